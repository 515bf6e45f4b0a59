// The engine behind a tool's --device flag: the CPU engine (LlamaModel) or the CUDA engine, as the
// evaluation harness's ScheduledGenerator that owns it. CUDA only in builds where nvcc was found.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "scheduler_runtime/eval/evaluation.h"

namespace pmpd::cli {

// device: "cpu" or "cuda". CPU: also caches the dequantized weights of every precision (faster
// generation, more host memory). Errors: an unknown device, a build without CUDA, load errors.
absl::StatusOr<std::unique_ptr<scheduler::ScheduledGenerator>> LoadGenerator(const std::string& model_dir,
                                                                             const std::string& device);

}  // namespace pmpd::cli
