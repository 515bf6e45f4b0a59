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

absl::StatusOr<std::unique_ptr<scheduler::ScheduledGenerator>> LoadGenerator(const std::string& model_dir,
                                                                             const std::string& device) {
  if (device == "cpu") {
    auto m = inference::LlamaModel::Load(model_dir);
    if (!m.ok()) return m.status();
    const int64_t cache = (*m)->CacheDequantizedWeights();
    if (cache > 0) std::fprintf(stderr, "%s: dequantized weight cache %.1f MB\n", model_dir.c_str(), cache / 1e6);
    return scheduler::MakeCpuGenerator(std::move(*m));
  }
  if (device == "cuda") {
#ifdef PMPD_HAVE_CUDA
    auto e = inference::CudaEngine::Load(model_dir);
    if (!e.ok()) return e.status();
    return scheduler::MakeCudaGenerator(std::move(*e));
#else
    return absl::FailedPreconditionError(
        "--device cuda: this build has no CUDA engine (nvcc was not found at configure time)");
#endif
  }
  return absl::InvalidArgumentError(absl::StrCat("--device must be cpu or cuda, got \"", device, "\""));
}

}  // namespace pmpd::cli
