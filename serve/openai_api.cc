#include "serve/openai_api.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/json_integer.h"
#include "scheduler_runtime/precision_scheduler.h"

namespace pmpd::serve {
namespace {

using nlohmann::json;

absl::Status Bad(const std::string& message) { return absl::InvalidArgumentError(message); }

std::string TypeName(const json& v) { return v.type_name(); }

// A number field in [lo, hi]; absent or null leaves `out` alone.
absl::Status ReadNumber(const json& body, const char* key, double lo, double hi, double* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_number()) return Bad(absl::StrCat(key, " must be a number, got ", TypeName(*it)));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi)
    return Bad(absl::StrCat(key, " must be in [", lo, ", ", hi, "], got ", it->dump()));
  *out = v;
  return absl::OkStatus();
}

absl::Status ReadInt(const json& body, const char* key, int64_t lo, int64_t hi, int* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  auto v = base::JsonInteger(*it, lo, hi);
  if (!v) {
    return Bad(absl::StrCat(key, " must be an integer in [", lo, ", ", hi, "], got ", it->dump()));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status ReadBool(const json& body, const char* key, bool* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return absl::OkStatus();
  if (!it->is_boolean()) return Bad(absl::StrCat(key, " must be true or false, got ", it->dump()));
  *out = it->get<bool>();
  return absl::OkStatus();
}

// A list of small integers, as a JSON array or as the command lines' "5,4,3".
absl::StatusOr<std::vector<int>> ReadIntList(const json& v, const char* key) {
  if (v.is_string()) return scheduler::ParseIntList(v.get<std::string>(), key);
  if (!v.is_array()) {
    return Bad(absl::StrCat(key, " must be a list of integers (or \"5,4,3\"), got ", TypeName(v)));
  }
  if (v.size() > 64) return Bad(absl::StrCat(key, " has ", v.size(), " items (at most 64)"));
  std::vector<int> out;
  for (size_t i = 0; i < v.size(); ++i) {
    auto x = base::JsonInteger(v[i], 0, 1 << 20);
    if (!x) {
      return Bad(
          absl::StrCat(key, "[", i, "] must be an integer in [0, 1048576], got ", v[i].dump()));
    }
    out.push_back(static_cast<int>(*x));
  }
  return out;
}

// Fields that change the output in ways we do not implement: refused, never silently ignored.
absl::Status RefuseUnsupported(const json& body) {
  if (auto it = body.find("n"); it != body.end() && !it->is_null()) {
    auto n = base::JsonInteger(*it, 1, 1);
    if (!n) return Bad(absl::StrCat("n must be 1 (one choice per request), got ", it->dump()));
  }
  for (const char* key : {"stop", "logit_bias", "tools", "functions", "tool_choice"}) {
    auto it = body.find(key);
    if (it != body.end() && !it->is_null() && !(it->is_array() && it->empty()) &&
        !(it->is_object() && it->empty())) {
      return Bad(absl::StrCat(key, " is not supported by pmpd-serve"));
    }
  }
  for (const char* key : {"logprobs", "echo"}) {
    auto it = body.find(key);
    if (it != body.end() && !it->is_null() && !(it->is_boolean() && !it->get<bool>()))
      return Bad(absl::StrCat(key, " is not supported by pmpd-serve"));
  }
  for (const char* key : {"presence_penalty", "frequency_penalty"}) {
    auto it = body.find(key);
    if (it != body.end() && !it->is_null() && !(it->is_number() && it->get<double>() == 0.0))
      return Bad(absl::StrCat(key, " is not supported by pmpd-serve (only 0)"));
  }
  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || it->value("type", json()) != json("text"))
      return Bad("response_format: only {\"type\": \"text\"} is supported");
  }
  return absl::OkStatus();
}

// The fields both endpoints share.
absl::Status ReadCommon(const json& body, const RequestLimits& limits, CompletionRequest* r) {
  if (auto st = RefuseUnsupported(body); !st.ok()) return st;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return Bad(absl::StrCat("model must be a string, got ", TypeName(*it)));
    r->model = it->get<std::string>();
  }
  r->max_tokens = limits.default_max_tokens;
  // max_completion_tokens is the newer name (chat); max_tokens the older one.
  for (const char* key : {"max_tokens", "max_completion_tokens"}) {
    if (auto st = ReadInt(body, key, 1, limits.max_tokens, &r->max_tokens); !st.ok())
      return Bad(absl::StrCat(st.message(), " (the server's --max-tokens-limit)"));
  }
  if (auto st = ReadNumber(body, "temperature", 0, 2, &r->temperature); !st.ok()) return st;
  if (auto st = ReadNumber(body, "top_p", 0, 1, &r->top_p); !st.ok()) return st;
  if (!(static_cast<float>(r->top_p) > 0)) return Bad("top_p must be > 0");
  if (auto st = ReadInt(body, "top_k", 0, 1 << 20, &r->top_k); !st.ok()) return st;
  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    auto s = base::JsonInteger(*it, std::numeric_limits<int64_t>::min(),
                               std::numeric_limits<int64_t>::max());
    if (!s) return Bad(absl::StrCat("seed must be an integer, got ", it->dump()));
    r->seed = static_cast<uint64_t>(*s);
  }
  if (auto st = ReadBool(body, "stream", &r->stream); !st.ok()) return st;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("stream_options must be an object");
    if (!r->stream) return Bad("stream_options needs \"stream\": true");
    if (auto st = ReadBool(*it, "include_usage", &r->include_usage); !st.ok())
      return Bad(absl::StrCat("stream_options.", st.message()));
  }
  // PMPD extras.
  if (auto it = body.find("precisions"); it != body.end() && !it->is_null()) {
    auto p = ReadIntList(*it, "precisions");
    if (!p.ok()) return p.status();
    if (auto st = scheduler::CheckPrecisionLadder(*p, 1, "precisions"); !st.ok()) return st;
    r->precisions = std::move(*p);
  }
  if (auto it = body.find("scheduler"); it != body.end() && !it->is_null()) {
    if (!it->is_string() || (*it != "static" && *it != "learned"))
      return Bad(absl::StrCat("scheduler must be \"static\" or \"learned\", got ", it->dump()));
    r->scheduler = it->get<std::string>();
  }
  if (auto it = body.find("switch_steps"); it != body.end() && !it->is_null()) {
    auto s = ReadIntList(*it, "switch_steps");
    if (!s.ok()) return s.status();
    r->switch_steps = std::move(*s);
  }
  if (auto st = ReadInt(body, "prefill_precision", 0, 8, &r->prefill_precision); !st.ok())
    return st;
  if (auto st = ReadInt(body, "precision", 0, 8, &r->precision); !st.ok()) return st;
  // The combinations the scheduler would otherwise ignore.
  if (r->precision != 0 && (!r->precisions.empty() || !r->scheduler.empty() ||
                            r->switch_steps.has_value() || r->prefill_precision != 0)) {
    return Bad(
        "precision (one precision) excludes precisions, scheduler, switch_steps and "
        "prefill_precision");
  }
  if (r->scheduler == "learned" && r->switch_steps.has_value())
    return Bad("switch_steps is for the static scheduler; the learned one predicts them");
  return absl::OkStatus();
}

absl::StatusOr<json> ParseObject(absl::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Bad("the request body is not valid JSON");
  if (!j.is_object())
    return Bad(absl::StrCat("the request body must be a JSON object, got ", TypeName(j)));
  return j;
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseChatCompletionRequest(absl::string_view body,
                                                             const RequestLimits& limits) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  CompletionRequest r;
  r.chat = true;
  auto it = j->find("messages");
  if (it == j->end() || !it->is_array() || it->empty())
    return Bad("messages must be a non-empty list of {\"role\", \"content\"}");
  if (it->size() > limits.max_messages)
    return Bad(
        absl::StrCat("messages has ", it->size(), " items (at most ", limits.max_messages, ")"));
  size_t bytes = 0;
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Bad(absl::StrCat(where, " must be an object"));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string())
      return Bad(absl::StrCat(where, ".role must be a string"));
    std::string role_s = role->get<std::string>();
    if (role_s == "developer") role_s = "system";  // OpenAI's newer name for the system message
    if (role_s != "system" && role_s != "user" && role_s != "assistant") {
      return Bad(
          absl::StrCat(where, ".role must be system, user or assistant, got ", role->dump()));
    }
    auto content = m.find("content");
    std::string text;
    if (content == m.end() || content->is_null()) {
      return Bad(absl::StrCat(where, ".content is missing"));
    } else if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      // Content parts: only text parts, joined.
      for (size_t k = 0; k < content->size(); ++k) {
        const json& part = (*content)[k];
        if (!part.is_object() || part.value("type", json()) != json("text") ||
            !part.contains("text") || !part["text"].is_string()) {
          return Bad(absl::StrCat(where, ".content[", k,
                                  "] must be {\"type\": \"text\", \"text\": ...} (pmpd-serve "
                                  "reads text only)"));
        }
        text += part["text"].get<std::string>();
      }
    } else {
      return Bad(absl::StrCat(where, ".content must be a string or a list of text parts"));
    }
    bytes += text.size();
    r.messages.push_back({role_s, std::move(text)});
  }
  if (bytes > limits.max_text_bytes)
    return Bad(
        absl::StrCat("the messages hold ", bytes, " bytes (at most ", limits.max_text_bytes, ")"));
  if (auto st = ReadCommon(*j, limits, &r); !st.ok()) return st;
  return r;
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(absl::string_view body,
                                                         const RequestLimits& limits) {
  auto j = ParseObject(body);
  if (!j.ok()) return j.status();
  CompletionRequest r;
  r.chat = false;
  auto it = j->find("prompt");
  if (it == j->end() || !it->is_string() || it->get<std::string>().empty()) {
    return Bad(
        "prompt must be a non-empty string (lists of prompts and token ids are not supported)");
  }
  r.prompt = it->get<std::string>();
  if (r.prompt.size() > limits.max_text_bytes)
    return Bad(absl::StrCat("prompt holds ", r.prompt.size(), " bytes (at most ",
                            limits.max_text_bytes, ")"));
  if (auto st = ReadCommon(*j, limits, &r); !st.ok()) return st;
  return r;
}

nlohmann::json SwitchPoints(const std::vector<int>& token_precisions) {
  json points = json::array();
  for (size_t k = 1; k < token_precisions.size(); ++k) {
    if (token_precisions[k] != token_precisions[k - 1]) {
      points.push_back(
          {{"step", k}, {"from", token_precisions[k - 1]}, {"to", token_precisions[k]}});
    }
  }
  return points;
}

nlohmann::json PmpdSummary(const CompletionOutput& out) {
  json j;
  j["scheduler"] = out.scheduler;
  j["precisions"] = out.precisions;
  if (!out.schedule.empty()) j["schedule"] = out.schedule;
  j["token_precisions"] = out.token_precisions;
  j["avg_bits"] = out.avg_bits;
  j["switch_points"] = SwitchPoints(out.token_precisions);
  j["prefill_ms"] = out.prefill_ms;
  j["decode_ms"] = out.decode_ms;
  j["tokens_per_s"] = out.tokens_per_s;
  if (!out.stopped_by.empty()) j["stopped_by"] = out.stopped_by;
  return j;
}

namespace {
json Usage(const CompletionOutput& out) {
  return {{"prompt_tokens", out.prompt_tokens},
          {"completion_tokens", out.completion_tokens},
          {"total_tokens", out.prompt_tokens + out.completion_tokens}};
}
}  // namespace

nlohmann::json CompletionResponse(const CompletionRequest& req, const std::string& id,
                                  int64_t created, const CompletionOutput& out) {
  json choice = {{"index", 0}, {"finish_reason", out.finish_reason}};
  if (req.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", out.text}};
  } else {
    choice["text"] = out.text;
  }
  choice["logprobs"] = nullptr;
  return {{"id", id},
          {"object", req.chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", json::array({choice})},
          {"usage", Usage(out)},
          {"pmpd", PmpdSummary(out)}};
}

nlohmann::json StreamChunk(const CompletionRequest& req, const std::string& id, int64_t created,
                           const std::string& text, int precision, const std::string& finish_reason,
                           const nlohmann::json* summary) {
  json choice = {{"index", 0},
                 {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}};
  if (req.chat) {
    choice["delta"] = finish_reason.empty() ? json{{"content", text}} : json::object();
  } else {
    choice["text"] = text;
  }
  json j = {{"id", id},
            {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
            {"created", created},
            {"model", req.model},
            {"choices", json::array({choice})}};
  if (summary != nullptr) {
    j["pmpd"] = *summary;
  } else {
    j["pmpd"] = {{"precision", precision}};
  }
  return j;
}

nlohmann::json StreamRoleChunk(const CompletionRequest& req, const std::string& id,
                               int64_t created) {
  return {{"id", id},
          {"object", "chat.completion.chunk"},
          {"created", created},
          {"model", req.model},
          {"choices", json::array({{{"index", 0},
                                    {"delta", {{"role", "assistant"}, {"content", ""}}},
                                    {"finish_reason", nullptr}}})}};
}

nlohmann::json StreamUsageChunk(const CompletionRequest& req, const std::string& id,
                                int64_t created, const CompletionOutput& out) {
  return {{"id", id},
          {"object", req.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", req.model},
          {"choices", json::array()},
          {"usage", Usage(out)}};
}

nlohmann::json ErrorJson(const std::string& message, const std::string& type,
                         const std::string& code) {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", nullptr},
            {"code", code.empty() ? json() : json(code)}}}};
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace pmpd::serve
