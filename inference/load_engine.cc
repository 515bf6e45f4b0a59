#include "inference/load_engine.h"

#include <cstdio>
#include <utility>

#include "absl/strings/str_cat.h"
#include "inference/llama_model.h"
#ifdef PMPD_HAVE_CUDA
#include "inference/cuda_engine.h"
#endif

namespace pmpd::inference {

bool CudaEngineBuilt() {
#ifdef PMPD_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

bool CudaAvailable() {
#ifdef PMPD_HAVE_CUDA
  return CudaEngine::DeviceCount() > 0;
#else
  return false;
#endif
}

absl::StatusOr<Device> ResolveDevice(Device device) {
  if (device == Device::kAuto) return CudaAvailable() ? Device::kCuda : Device::kCpu;
  if (device == Device::kCuda && !CudaEngineBuilt()) {
    return absl::FailedPreconditionError(
        "device cuda: this build has no CUDA engine (nvcc was not found at configure time)");
  }
  if (device == Device::kCuda && !CudaAvailable()) {
    return absl::FailedPreconditionError(
        "device cuda: no CUDA device is visible (driver missing or no GPU)");
  }
  return device;
}

absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_path, Device device,
                                                   const LoadEngineOptions& options) {
  auto resolved = ResolveDevice(device);
  if (!resolved.ok()) return resolved.status();
  if (*resolved == Device::kCpu) {
    auto m = LlamaModel::Load(model_path);
    if (!m.ok()) return m.status();
    if (auto st = (*m)->SetMaxBatch(options.max_batch); !st.ok()) return st;
    if (options.cache_dequantized_weights) {
      const int64_t bytes = (*m)->CacheDequantizedWeights();
      if (bytes > 0 && options.verbose) {
        std::fprintf(stderr, "%s: dequantized weight cache %.1f MB\n", model_path.c_str(),
                     bytes / 1e6);
      }
    }
    return std::unique_ptr<Engine>(std::move(*m));
  }
#ifdef PMPD_HAVE_CUDA
  CudaEngineOptions o;
  o.device = options.cuda_device;
  if (options.cuda_max_context > 0) o.max_context = options.cuda_max_context;
  o.max_batch = options.max_batch;
  o.kv_cache_fp16 = options.cuda_kv_cache_fp16;
  if (options.cuda_rows_as_single) o.gemv = GemvKernel::kCodeWord;
  auto e = CudaEngine::Load(model_path, o);
  if (!e.ok()) return e.status();
  return std::unique_ptr<Engine>(std::move(*e));
#else
  return absl::InternalError("unreachable: ResolveDevice refused cuda");
#endif
}

}  // namespace pmpd::inference
