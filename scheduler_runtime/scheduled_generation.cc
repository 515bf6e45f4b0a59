#include "scheduler_runtime/scheduled_generation.h"

#include <algorithm>
#include <chrono>
#include <memory>

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
    return absl::FailedPreconditionError(absl::StrCat(
        name,
        " is not an any-precision checkpoint: precision schedules need one (see pmpd-quantize)"));
  }
  for (int p : precisions) {
    if (p < min_bits || p > max_bits) {
      return absl::InvalidArgumentError(absl::StrCat("precision ", p, " is missing from ", name,
                                                     ", which holds ", min_bits, " to ", max_bits,
                                                     " bits"));
    }
  }
  return absl::OkStatus();
}

namespace {
int PrefillPrecision(const ScheduledGenerationOptions& options, const PrecisionScheduler& s) {
  return options.prefill_precision > 0 ? options.prefill_precision : s.precisions().front();
}
}  // namespace

absl::Status CheckScheduledGeneration(const inference::Engine& engine,
                                      absl::Span<const int> prompt_ids,
                                      const ScheduledGenerationOptions& options,
                                      const PrecisionScheduler* scheduler) {
  if (scheduler != nullptr) {
    std::vector<int> needed = scheduler->precisions();
    needed.push_back(PrefillPrecision(options, *scheduler));
    if (auto st = CheckPrecisionRange(engine.min_precision(), engine.max_precision(), needed);
        !st.ok())
      return st;
  }
  return inference::CheckGeneration(engine, prompt_ids, options.generation);
}

absl::StatusOr<ScheduledGenerationResult> GenerateScheduled(
    inference::Engine& engine, absl::Span<const int> prompt_ids,
    const ScheduledGenerationOptions& options, PrecisionScheduler* scheduler,
    const std::function<void(int, int)>& on_token) {
  ScheduledGenerationResult r;
  inference::GenerationHooks hooks;
  if (auto st = CheckScheduledGeneration(engine, prompt_ids, options, scheduler); !st.ok())
    return st;
  if (scheduler != nullptr) {
    const int prefill = PrefillPrecision(options, *scheduler);
    scheduler->Reset();
    if (auto st = engine.SetPrecision(prefill); !st.ok()) return st;
    hooks.after_prefill = [&]() -> absl::Status {
      const auto t0 = Clock::now();
      auto st = scheduler->OnPrefill(engine.LastLayerKv());
      r.schedule_us += 1000 * MsSince(t0);
      return st;
    };
    hooks.before_step = [&](int step, absl::Span<const float> logits) -> absl::Status {
      const auto t0 = Clock::now();
      const int wanted = scheduler->NextPrecision(step, engine.precision(), logits);
      r.schedule_us += 1000 * MsSince(t0);
      return wanted == engine.precision() ? absl::OkStatus() : engine.SetPrecision(wanted);
    };
  }
  auto g = inference::Generate(
      engine, prompt_ids, options.generation,
      [&](int id) {
        r.token_precisions.push_back(
            engine.precision());  // the precision of the pass that produced it
        if (on_token) on_token(id, engine.precision());
      },
      hooks);
  if (!g.ok()) return g.status();
  r.generation = std::move(*g);
  r.avg_bits = AverageBits(r.token_precisions);
  return r;
}

absl::StatusOr<inference::GenerationResult> GreedyGeneration(inference::Engine& engine,
                                                             absl::Span<const int> prompt,
                                                             int max_new_tokens, int precision,
                                                             absl::Span<const int> stop_ids) {
  std::unique_ptr<PrecisionScheduler> fixed;
  if (precision > 0) {
    auto s = MakeStaticScheduler({precision}, {});
    if (!s.ok()) return s.status();
    fixed = std::move(*s);
  }
  ScheduledGenerationOptions opt;
  opt.generation.max_new_tokens = max_new_tokens;
  opt.generation.stop_ids.assign(stop_ids.begin(), stop_ids.end());
  auto r = GenerateScheduled(engine, prompt, opt, fixed.get());
  if (!r.ok()) return r.status();
  return std::move(r->generation);
}

}  // namespace pmpd::scheduler
