#include "scheduler_runtime/scheduled_generation.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "inference/timing.h"

namespace pmpd::scheduler {
using inference::Clock;
using inference::MsSince;

double AverageBits(const std::vector<int>& precisions) {
  if (precisions.empty()) return 0;
  double s = 0;
  for (int p : precisions) s += p;
  return s / precisions.size();
}

absl::Status CheckPrecisionRange(int min_bits, int max_bits, const std::vector<int>& precisions,
                                 const std::string& model_dir) {
  const std::string name = model_dir.empty() ? "the checkpoint" : model_dir;
  if (max_bits == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(name, " is not an any-precision checkpoint: precision schedules need one (see pmpd-quantize)"));
  }
  for (int p : precisions) {
    if (p < min_bits || p > max_bits) {
      return absl::InvalidArgumentError(absl::StrCat("precision ", p, " is missing from ", name, ", which holds ",
                                                     min_bits, " to ", max_bits, " bits"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckModelPrecisions(const inference::LlamaModel& model, const std::vector<int>& precisions,
                                  const std::string& model_dir) {
  return CheckPrecisionRange(model.min_precision(), model.max_precision(), precisions, model_dir);
}

absl::StatusOr<ScheduledGenerationResult> GenerateScheduled(inference::LlamaModel& model,
                                                            absl::Span<const int> prompt_ids,
                                                            const ScheduledGenerationOptions& options,
                                                            PrecisionScheduler& scheduler,
                                                            const std::function<void(int, int)>& on_token) {
  const auto& opt = options.generation;
  std::vector<int> needed = scheduler.precisions();
  const int prefill = options.prefill_precision > 0 ? options.prefill_precision : needed.front();
  needed.push_back(prefill);
  if (auto st = CheckModelPrecisions(model, needed); !st.ok()) return st;
  ScheduledGenerationResult r;
  scheduler.Reset();
  if (auto st = model.SetPrecision(prefill); !st.ok()) return st;
  const auto& c = model.config();
  std::vector<float> k, v;
  inference::GenerationHooks hooks;
  hooks.after_prefill = [&]() -> absl::Status {
    model.LastLayerKv(&k, &v);
    const auto t0 = Clock::now();
    auto st = scheduler.OnPrefill({k, v, c.num_key_value_heads, model.cache_len(), c.head_dim});
    r.schedule_us += 1000 * MsSince(t0);
    return st;
  };
  hooks.before_step = [&](int step, absl::Span<const float> logits) -> absl::Status {
    const auto t0 = Clock::now();
    const int wanted = scheduler.NextPrecision(step, model.precision(), logits);
    r.schedule_us += 1000 * MsSince(t0);
    return wanted == model.precision() ? absl::OkStatus() : model.SetPrecision(wanted);
  };
  auto g = inference::Generate(model, prompt_ids, opt, [&](int id) {
    r.token_precisions.push_back(model.precision());  // the precision of the pass that produced it
    if (on_token) on_token(id, model.precision());
  }, hooks);
  if (!g.ok()) return g.status();
  r.generation = std::move(*g);
  r.avg_bits = AverageBits(r.token_precisions);
  return r;
}

}  // namespace pmpd::scheduler
