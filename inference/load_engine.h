// The engine behind every tool's --device: the CPU reference engine (LlamaModel) or the CUDA
// engine, loaded from a model path (Hugging Face directory, any-precision checkpoint or .gguf).
// Library pmpd_engine links the CUDA engine in builds where nvcc was found; data_gen, eval and the
// CLIs call it directly.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "inference/engine.h"

namespace pmpd::inference {

struct LoadEngineOptions {
  // CPU: keep float32 copies of the quantized weights at every precision (LlamaModel::
  // CacheDequantizedWeights): dense products, much faster decoding, (P - S + 1) x 4 bytes per
  // weight.
  bool cache_dequantized_weights = true;
  // CUDA: positions the KV cache holds (0: the engine's default, CudaEngineOptions::max_context).
  int cuda_max_context = 0;
  int cuda_device = 0;
  // CUDA: the KV cache in fp16 (CudaEngineOptions::kv_cache_fp16).
  bool cuda_kv_cache_fp16 = false;
  // CUDA: batched rows computed bit for bit as single rows (the code-word GEMV for every row
  // count, GemvKernel::kCodeWord), so a sequence's tokens do not depend on which others share its
  // steps; false: the automatic choice (tensor cores from 3-5 rows: faster, other rounding).
  bool cuda_rows_as_single = false;
  // Sequence slots (Engine::max_batch): CUDA 1..8 (CudaEngineOptions::max_batch, each slot a
  // cache of the full context on the GPU); CPU any >= 1 (LlamaModel::SetMaxBatch).
  int max_batch = 1;
  // Print what was loaded (cache sizes) to stderr.
  bool verbose = true;
};

// Whether this build has the CUDA engine, and whether the runtime sees a GPU.
bool CudaEngineBuilt();
bool CudaAvailable();

// kAuto resolves to kCuda when CudaAvailable(), else kCpu. Errors: kCuda in a build without the
// CUDA engine or on a machine without a GPU; load errors (naming the file).
absl::StatusOr<Device> ResolveDevice(Device device);
absl::StatusOr<std::unique_ptr<Engine>> LoadEngine(const std::string& model_path, Device device,
                                                   const LoadEngineOptions& options = {});

}  // namespace pmpd::inference
