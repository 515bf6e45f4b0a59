#include "cli/engine_loader.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "inference/llama_model.h"
#ifdef PMPD_HAVE_CUDA
#include "inference/cuda_engine.h"
#include "scheduler_runtime/cuda_scheduled_generation.h"
#endif

namespace pmpd::cli {
namespace {

// A generator together with the engine it runs on.
template <typename Engine>
class Owning : public scheduler::ScheduledGenerator {
 public:
  Owning(std::unique_ptr<Engine> engine, std::unique_ptr<scheduler::ScheduledGenerator> (*make)(Engine&))
      : engine_(std::move(engine)), inner_(make(*engine_)) {}
  const models::LlamaConfig& config() const override { return inner_->config(); }
  int max_context() const override { return inner_->max_context(); }
  int min_precision() const override { return inner_->min_precision(); }
  int max_precision() const override { return inner_->max_precision(); }
  std::string classifier_device() const override { return inner_->classifier_device(); }
  absl::StatusOr<scheduler::ScheduledGenerationResult> Generate(absl::Span<const int> prompt_ids,
                                                                const scheduler::ScheduledGenerationOptions& options,
                                                                scheduler::PrecisionScheduler* s) override {
    return inner_->Generate(prompt_ids, options, s);
  }

 private:
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<scheduler::ScheduledGenerator> inner_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<scheduler::ScheduledGenerator>> LoadGenerator(const std::string& model_dir,
                                                                             const std::string& device) {
  if (device == "cpu") {
    auto m = inference::LlamaModel::Load(model_dir);
    if (!m.ok()) return m.status();
    const int64_t cache = (*m)->CacheDequantizedWeights();
    if (cache > 0) std::fprintf(stderr, "%s: dequantized weight cache %.1f MB\n", model_dir.c_str(), cache / 1e6);
    return std::unique_ptr<scheduler::ScheduledGenerator>(
        new Owning<inference::LlamaModel>(std::move(*m), &scheduler::MakeCpuGenerator));
  }
  if (device == "cuda") {
#ifdef PMPD_HAVE_CUDA
    auto e = inference::CudaEngine::Load(model_dir);
    if (!e.ok()) return e.status();
    return std::unique_ptr<scheduler::ScheduledGenerator>(
        new Owning<inference::CudaEngine>(std::move(*e), &scheduler::MakeCudaGenerator));
#else
    return absl::FailedPreconditionError(
        "--device cuda: this build has no CUDA engine (nvcc was not found at configure time)");
#endif
  }
  return absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, got \"", device, "\""));
}

}  // namespace pmpd::cli
