#include "scheduler_runtime/cuda_scheduled_generation.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "inference/sampler.h"
#include "inference/timing.h"

namespace pmpd::scheduler {

absl::StatusOr<ScheduledGenerationResult> GenerateScheduledCuda(
    inference::CudaEngine& engine, absl::Span<const int> prompt_ids,
    const ScheduledGenerationOptions& options, PrecisionScheduler* scheduler,
    const std::function<void(int, int)>& on_token) {
  using inference::Clock;
  using inference::MsSince;
  const inference::GenerationOptions& opt = options.generation;
  if (auto st = inference::ValidateSamplingOptions(opt.sampling); !st.ok()) return st;
  if (opt.max_new_tokens < 0) return absl::InvalidArgumentError("--max-new-tokens must be >= 0");
  if (prompt_ids.empty()) return absl::InvalidArgumentError("the prompt is empty");
  const int ctx = engine.max_context();
  if (static_cast<int>(prompt_ids.size()) >= ctx) {
    return absl::OutOfRangeError(absl::StrCat(
        "the prompt has ", prompt_ids.size(),
        " tokens, which does not leave room in the GPU engine's context of ", ctx, " tokens"));
  }
  int prefill = engine.precision();
  if (scheduler != nullptr) {
    std::vector<int> needed = scheduler->precisions();
    prefill = options.prefill_precision > 0 ? options.prefill_precision : needed.front();
    needed.push_back(prefill);
    if (auto st = CheckPrecisionRange(engine.min_precision(), engine.max_precision(), needed);
        !st.ok()) {
      return st;
    }
    scheduler->Reset();
    if (auto st = engine.SetPrecision(prefill); !st.ok()) return st;
  }
  const bool greedy = opt.sampling.temperature == 0.f;
  const auto& eos = engine.config().eos_token_ids;
  ScheduledGenerationResult r;
  inference::GenerationResult& g = r.generation;
  g.prompt_ids.assign(prompt_ids.begin(), prompt_ids.end());
  g.finish_reason = "length";
  engine.Reset();
  inference::Sampler sampler(opt.sampling);
  std::vector<float> logits;
  int argmax = 0;
  auto t0 = Clock::now();
  if (auto st = engine.Prefill(prompt_ids, greedy ? nullptr : &logits, &argmax); !st.ok())
    return st;
  g.prefill_ms = MsSince(t0);
  if (scheduler != nullptr) {
    // Only what the scheduler reads: nothing (static), a view of the GPU cache (classifiers on
    // CUDA), or a host copy (classifiers on the CPU).
    const auto ts = Clock::now();
    std::vector<float> k, v;
    const auto& c = engine.config();
    PrefillKv kv{{}, {}, c.num_key_value_heads, engine.cache_len(), c.head_dim};
    if (scheduler->kv_access() == KvAccess::kHostOrDevice) {
      engine.LastLayerKvDevice(&kv.device_k, &kv.device_v, &kv.device_head_stride);
      kv.cuda_device = engine.cuda_device();
    } else if (scheduler->kv_access() == KvAccess::kHost) {
      engine.LastLayerKv(&k, &v);
      kv.k = k;
      kv.v = v;
    }
    auto st = scheduler->OnPrefill(kv);
    r.schedule_us += 1000 * MsSince(ts);
    if (!st.ok()) return st;
  }
  while (static_cast<int>(g.new_ids.size()) < opt.max_new_tokens) {
    const int next = greedy ? argmax : sampler.Sample(logits);
    g.new_ids.push_back(next);
    r.token_precisions.push_back(engine.precision());  // the precision of the pass that produced it
    if (on_token) on_token(next, engine.precision());
    if (inference::IsStopToken(opt, eos, next)) {
      g.finish_reason = "eos";
      break;
    }
    if (static_cast<int>(g.new_ids.size()) == opt.max_new_tokens) break;
    if (engine.cache_len() >= ctx) {
      g.finish_reason = "context";
      break;
    }
    if (scheduler != nullptr) {
      const auto ts = Clock::now();
      const int wanted = scheduler->NextPrecision(
          static_cast<int>(g.new_ids.size()), engine.precision(),
          greedy ? absl::Span<const float>() : absl::MakeConstSpan(logits));
      r.schedule_us += 1000 * MsSince(ts);
      if (wanted != engine.precision()) {
        if (auto st = engine.SetPrecision(wanted); !st.ok()) return st;
      }
    }
    t0 = Clock::now();
    if (auto st = engine.DecodeStep(next, greedy ? nullptr : &logits, &argmax); !st.ok()) return st;
    g.decode_ms += MsSince(t0);
    ++g.decode_steps;
  }
  r.avg_bits = AverageBits(r.token_precisions);
  return r;
}

namespace {
class CudaGenerator : public ScheduledGenerator {
 public:
  explicit CudaGenerator(inference::CudaEngine& engine) : engine_(engine) {}
  explicit CudaGenerator(std::unique_ptr<inference::CudaEngine> engine)
      : owned_(std::move(engine)), engine_(*owned_) {}
  const models::LlamaConfig& config() const override { return engine_.config(); }
  int max_context() const override { return engine_.max_context(); }
  int min_precision() const override { return engine_.min_precision(); }
  int max_precision() const override { return engine_.max_precision(); }
  std::string classifier_device() const override { return "cuda"; }
  absl::StatusOr<ScheduledGenerationResult> Generate(absl::Span<const int> prompt_ids,
                                                     const ScheduledGenerationOptions& options,
                                                     PrecisionScheduler* scheduler) override {
    return GenerateScheduledCuda(engine_, prompt_ids, options, scheduler);
  }

 private:
  std::unique_ptr<inference::CudaEngine> owned_;  // null when borrowed
  inference::CudaEngine& engine_;
};
}  // namespace

std::unique_ptr<ScheduledGenerator> MakeCudaGenerator(inference::CudaEngine& engine) {
  return std::make_unique<CudaGenerator>(engine);
}

std::unique_ptr<ScheduledGenerator> MakeCudaGenerator(std::unique_ptr<inference::CudaEngine> engine) {
  return std::make_unique<CudaGenerator>(std::move(engine));
}

}  // namespace pmpd::scheduler
