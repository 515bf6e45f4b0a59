// Autoregressive generation on any Engine (the CPU and the CUDA engine alike): prefill the prompt,
// then one token per step until EOS, the token limit or the end of the context. The one generation
// loop of the project: schedules, labelling and evaluation run through it via GenerationHooks.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/engine.h"
#include "inference/sampler.h"

namespace pmpd::inference {

struct GenerationOptions {
  int max_new_tokens = 64;
  SamplingOptions sampling;
  // Stop (finish_reason "eos") after emitting one of the model's EOS ids or of stop_ids (a chat
  // template's end of turn, e.g. "<|im_end|>"); false: neither stops (benchmarks).
  bool stop_at_eos = true;
  std::vector<int> stop_ids;
  // Asked after each new token (may be empty): true ends generation there with finish_reason
  // "stopped" and the tokens so far (a server's client that went away, a time limit).
  std::function<bool()> should_stop;
};

// The stopping rule of every generation loop: whether `id` ends generation under `options`.
bool IsStopToken(const GenerationOptions& options, absl::Span<const int> eos_token_ids, int id);

struct GenerationResult {
  std::vector<int> prompt_ids;
  std::vector<int> new_ids;
  std::string finish_reason;  // "eos", "length", "context" or "stopped" (should_stop)
  double prefill_ms = 0;
  double decode_ms = 0;  // time of the single-token forward passes
  int decode_steps = 0;  // single-token forward passes run
  double decode_tokens_per_s() const {
    return decode_ms > 0 ? 1000.0 * decode_steps / decode_ms : 0;
  }
  // new_ids without the stop token that ended generation (the last one when finish_reason is
  // "eos"): what to decode and show as text.
  absl::Span<const int> text_ids() const {
    return absl::MakeConstSpan(new_ids).first(new_ids.size() -
                                              (finish_reason == "eos" && !new_ids.empty() ? 1 : 0));
  }
};

// Optional per-step control (precision schedulers use it). after_prefill runs once the prompt is in
// the cache, before token 0 is chosen; before_step(k, logits) runs before the single-token pass
// that produces token k >= 1, with the logits that produced token k - 1 (empty when decoding is
// greedy: then only the argmax leaves the engine). An error stops generation. Their time counts in
// neither prefill_ms nor decode_ms.
struct GenerationHooks {
  std::function<absl::Status()> after_prefill;
  std::function<absl::Status(int step, absl::Span<const float> logits)> before_step;
};

// What Generate refuses before it touches the engine: sampling options out of range, a negative
// --max-new-tokens, an empty prompt, a prompt that leaves no room in the context. Callers that
// print something first (a CLI echoing the prompt) check here before printing. Cost: none.
absl::Status CheckGeneration(const Engine& model, absl::Span<const int> prompt_ids,
                             const GenerationOptions& options);

// Resets the engine's cache and generates from `prompt_ids` at the engine's current precision
// (hooks may change it). `on_token` (may be empty) is called with each new id as soon as it is
// chosen. Fails when the prompt is empty or does not fit the context.
absl::StatusOr<GenerationResult> Generate(Engine& model, absl::Span<const int> prompt_ids,
                                          const GenerationOptions& options,
                                          const std::function<void(int)>& on_token = {},
                                          const GenerationHooks& hooks = {});

}  // namespace pmpd::inference
