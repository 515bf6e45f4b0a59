#include "inference/generator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "inference/timing.h"

namespace pmpd::inference {

bool IsStopToken(const GenerationOptions& options, absl::Span<const int> eos_token_ids, int id) {
  if (!options.stop_at_eos) return false;
  return std::find(eos_token_ids.begin(), eos_token_ids.end(), id) != eos_token_ids.end() ||
         std::find(options.stop_ids.begin(), options.stop_ids.end(), id) != options.stop_ids.end();
}

absl::Status CheckGeneration(const Engine& model, absl::Span<const int> prompt_ids,
                             const GenerationOptions& options) {
  if (auto st = ValidateSamplingOptions(options.sampling); !st.ok()) return st;
  if (options.max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max-new-tokens must be >= 0, got ", options.max_new_tokens));
  }
  if (prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int ctx = model.max_context();
  if (static_cast<int>(prompt_ids.size()) >= ctx) {
    return absl::OutOfRangeError(absl::StrCat(
        "the prompt has ", prompt_ids.size(),
        " tokens, which does not leave room in the model's context of ", ctx,
        model.device() == Device::kCuda ? " tokens (the CUDA engine's KV cache size)"
                                        : " tokens (max_position_embeddings in config.json)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<GenerationResult> Generate(Engine& model, absl::Span<const int> prompt_ids,
                                          const GenerationOptions& options,
                                          const std::function<void(int)>& on_token,
                                          const GenerationHooks& hooks) {
  if (auto st = CheckGeneration(model, prompt_ids, options); !st.ok()) return st;
  const auto& eos = model.config().eos_token_ids;
  GenerationResult r;
  r.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  r.finish_reason = "length";
  model.Reset();
  Sampler sampler(options.sampling);
  const bool greedy = options.sampling.temperature == 0.f;
  std::vector<float> logits;  // filled only when sampling
  int argmax = 0;
  auto t0 = Clock::now();
  if (auto st = model.Prefill(prompt_ids, greedy ? nullptr : &logits, &argmax); !st.ok()) return st;
  r.prefill_ms = MsSince(t0);
  if (hooks.after_prefill) {
    if (auto st = hooks.after_prefill(); !st.ok()) return st;
  }
  while (static_cast<int>(r.new_ids.size()) < options.max_new_tokens) {
    const int next = greedy ? argmax : sampler.Sample(logits);
    r.new_ids.push_back(next);
    if (on_token) on_token(next);
    if (IsStopToken(options, eos, next)) {
      r.finish_reason = "eos";
      break;
    }
    if (static_cast<int>(r.new_ids.size()) == options.max_new_tokens) break;
    if (options.should_stop && options.should_stop()) {
      r.finish_reason = "stopped";
      break;
    }
    if (model.cache_len() >= model.max_context()) {
      r.finish_reason = "context";
      break;
    }
    if (hooks.before_step) {
      if (auto st = hooks.before_step(static_cast<int>(r.new_ids.size()), logits); !st.ok())
        return st;
    }
    t0 = Clock::now();
    if (auto st = model.DecodeStep(next, greedy ? nullptr : &logits, &argmax); !st.ok()) return st;
    r.decode_ms += MsSince(t0);
    ++r.decode_steps;
  }
  return r;
}

}  // namespace pmpd::inference
