#include "scheduler_runtime/scheduled_generation.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace pmpd::scheduler {
namespace {
using Clock = std::chrono::steady_clock;
double MsSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }
}  // namespace

double AverageBits(const std::vector<int>& precisions) {
  if (precisions.empty()) return 0;
  double s = 0;
  for (int p : precisions) s += p;
  return s / precisions.size();
}

absl::StatusOr<ScheduledGenerationResult> GenerateScheduled(inference::LlamaModel& model,
                                                            absl::Span<const int> prompt_ids,
                                                            const ScheduledGenerationOptions& options,
                                                            PrecisionScheduler& scheduler,
                                                            const std::function<void(int, int)>& on_token) {
  const auto& opt = options.generation;
  if (auto st = inference::ValidateSamplingOptions(opt.sampling); !st.ok()) return st;
  if (opt.max_new_tokens < 0) {
    return absl::InvalidArgumentError(absl::StrCat("--max-new-tokens must be >= 0, got ", opt.max_new_tokens));
  }
  if (model.max_precision() == 0) {
    return absl::FailedPreconditionError("precision schedules need an any-precision checkpoint (see pmpd-quantize)");
  }
  std::vector<int> needed = scheduler.precisions();
  const int prefill = options.prefill_precision > 0 ? options.prefill_precision : needed.front();
  needed.push_back(prefill);
  for (int p : needed) {
    if (p < model.min_precision() || p > model.max_precision()) {
      return absl::InvalidArgumentError(absl::StrCat("precision ", p, " is missing from the checkpoint, which holds ",
                                                     model.min_precision(), " to ", model.max_precision(), " bits"));
    }
  }
  if (prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int ctx = model.max_context();
  if (static_cast<int>(prompt_ids.size()) >= ctx) {
    return absl::OutOfRangeError(absl::StrCat("the prompt has ", prompt_ids.size(),
                                              " tokens, which does not leave room in the model's context of ", ctx,
                                              " tokens (max_position_embeddings in config.json)"));
  }
  ScheduledGenerationResult r;
  inference::GenerationResult& g = r.generation;
  g.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  g.finish_reason = "length";
  model.Reset();
  scheduler.Reset();
  inference::Sampler sampler(opt.sampling);
  const auto& eos = model.config().eos_token_ids;
  std::vector<float> logits, k, v;
  if (auto st = model.SetPrecision(prefill); !st.ok()) return st;
  auto t0 = Clock::now();
  if (auto st = model.Forward(prompt_ids, /*all_positions=*/false, &logits); !st.ok()) return st;
  g.prefill_ms = MsSince(t0);
  const auto& c = model.config();
  model.LastLayerKv(&k, &v);
  t0 = Clock::now();
  if (auto st = scheduler.OnPrefill({k, v, c.num_key_value_heads, model.cache_len(), c.head_dim}); !st.ok()) return st;
  r.schedule_us += 1000 * MsSince(t0);
  int precision = prefill;
  while (static_cast<int>(g.new_ids.size()) < opt.max_new_tokens) {
    const int next = sampler.Sample(logits);
    g.new_ids.push_back(next);
    r.token_precisions.push_back(precision);
    if (on_token) on_token(next, precision);
    if (opt.stop_at_eos && std::find(eos.begin(), eos.end(), next) != eos.end()) {
      g.finish_reason = "eos";
      break;
    }
    if (static_cast<int>(g.new_ids.size()) == opt.max_new_tokens) break;
    if (model.cache_len() >= ctx) {
      g.finish_reason = "context";
      break;
    }
    t0 = Clock::now();
    const int step = static_cast<int>(g.new_ids.size());
    const int wanted = scheduler.NextPrecision(step, precision, logits);
    r.schedule_us += 1000 * MsSince(t0);
    if (wanted != precision) {
      if (auto st = model.SetPrecision(wanted); !st.ok()) return st;
      precision = wanted;
    }
    t0 = Clock::now();
    const int one[1] = {next};
    if (auto st = model.Forward(one, false, &logits); !st.ok()) return st;
    g.decode_ms += MsSince(t0);
    ++g.decode_steps;
  }
  r.avg_bits = AverageBits(r.token_precisions);
  return r;
}

}  // namespace pmpd::scheduler
