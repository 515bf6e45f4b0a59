// The OpenAI-compatible request and response formats of pmpd-serve, without HTTP and without a
// model: request bodies parsed and validated into CompletionRequest (every error a 400 with a
// message naming the field), results turned into the JSON objects OpenAI clients read. Pure
// functions on strings and structs, so the parser is unit-tested and fuzzed on its own.
//
// Supported: POST /v1/chat/completions (messages; content as a string or as text parts) and
// POST /v1/completions (prompt as a string), max_tokens / max_completion_tokens, temperature,
// top_p, seed, n = 1, stream (server-sent events) with stream_options.include_usage. Refused with a
// clear error rather than ignored: n > 1, stop, logprobs, tools, non-zero presence/frequency
// penalties, response_format other than text. Other fields (user, metadata, ...) are ignored, as
// OpenAI does for fields that do not change the output.
//
// PMPD extras in the request (all optional; the server's defaults otherwise): "precisions" (list
// of bit widths high to low, or "5,4,3"), "scheduler" ("static" or "learned"), "switch_steps"
// (cumulative steps, one per adjacent pair), "prefill_precision", "precision" (one precision for
// the whole answer: a uniform baseline), "top_k". In the response: a "pmpd" object with the
// precision of every token, the average bits, tokens/s and the switch points.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "models/chat_template.h"
#include "nlohmann/json.hpp"

namespace pmpd::serve {

// Bounds every request is checked against (the server's flags).
struct RequestLimits {
  int max_tokens = 1024;         // the largest max_tokens a request may ask for
  int default_max_tokens = 256;  // when a request gives none
  size_t max_messages = 256;
  size_t max_text_bytes = 1 << 20;  // all message contents / the prompt together
};

struct CompletionRequest {
  bool chat = true;   // /v1/chat/completions (messages) or /v1/completions (prompt)
  std::string model;  // as the client sent it (echoed back; any value is accepted)
  std::vector<models::ChatMessage> messages;
  std::string prompt;
  int max_tokens = 0;
  double temperature = 1.0;  // OpenAI's default; 0 is greedy
  double top_p = 1.0;
  int top_k = 0;
  std::optional<uint64_t> seed;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage: a last chunk with usage
  // PMPD extras; empty / 0 = the server's default.
  std::vector<int> precisions;
  std::string scheduler;  // "", "static" or "learned"
  std::optional<std::vector<int>> switch_steps;
  int prefill_precision = 0;
  int precision = 0;
};

// Parses and validates a request body. Errors are InvalidArgument with a message for the client
// ("messages[1].role must be system, user or assistant, got \"tool\""). Cost: one JSON parse.
absl::StatusOr<CompletionRequest> ParseChatCompletionRequest(absl::string_view body,
                                                             const RequestLimits& limits);
absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body,
                                                         const RequestLimits& limits);

// What one generation produced, in the terms of the response.
struct CompletionOutput {
  std::string text;
  std::string finish_reason;  // "stop" (EOS or end of turn), "length" (max_tokens, context, limit)
  int prompt_tokens = 0;
  int completion_tokens = 0;
  std::vector<int> token_precisions;  // one per generated token (0 on a plain model)
  double avg_bits = 0;
  double prefill_ms = 0, decode_ms = 0, tokens_per_s = 0;
  std::string scheduler;        // "static", "learned" or "uniform"
  std::string schedule;         // the scheduler's description (learned: its predicted steps)
  std::vector<int> precisions;  // the ladder used, high to low
  std::string stopped_by;       // "" or why generation was cut ("time limit")
};

// The steps at which the precision changed: [{"step": k, "from": p, "to": q}, ...].
nlohmann::json SwitchPoints(const std::vector<int>& token_precisions);

// The "pmpd" object of a response (and of the last streamed chunk).
nlohmann::json PmpdSummary(const CompletionOutput& out);

// A whole (non-streamed) response: "chat.completion" or "text_completion".
nlohmann::json CompletionResponse(const CompletionRequest& req, const std::string& id,
                                  int64_t created, const CompletionOutput& out);

// One streamed chunk carrying `text` (may be empty) produced at `precision`; finish_reason empty
// for all but the last; the last chunk also carries the "pmpd" summary (`summary` non-null).
nlohmann::json StreamChunk(const CompletionRequest& req, const std::string& id, int64_t created,
                           const std::string& text, int precision, const std::string& finish_reason,
                           const nlohmann::json* summary);
// The first chat chunk (delta {"role": "assistant"}), as OpenAI sends it.
nlohmann::json StreamRoleChunk(const CompletionRequest& req, const std::string& id,
                               int64_t created);
// stream_options.include_usage: the chunk after the last, with empty choices and usage.
nlohmann::json StreamUsageChunk(const CompletionRequest& req, const std::string& id,
                                int64_t created, const CompletionOutput& out);

// {"error": {"message", "type", "param": null, "code"}} as OpenAI answers errors.
nlohmann::json ErrorJson(const std::string& message, const std::string& type,
                         const std::string& code = "");

// A JSON text for the wire: invalid UTF-8 (a model may emit any bytes) replaced, never a throw.
std::string Dump(const nlohmann::json& j);

}  // namespace pmpd::serve
