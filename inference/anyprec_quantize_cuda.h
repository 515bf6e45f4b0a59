// models::QuantizeAnyprec on the GPU (kernels/anyprec_quantize.cuh): the same AnyprecMatrix, bit
// for bit, from host arrays to host arrays, with device memory from LibTorch's CUDA allocator (so
// its peak shows in CudaPeakReservedBytes).
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "models/anyprec_quantizer.h"

namespace pmpd::inference {

// w, sensitivity: [N, K] row-major on the host (sensitivity nullptr: uniform). Device memory: the
// matrix and its sensitivities (8 N K bytes), codes (N K), LUTs, and at most 1 GiB of scratch.
// Errors: no CUDA device (or a build without CUDA).
absl::StatusOr<models::AnyprecMatrix> QuantizeAnyprecCuda(
    const float* w, const float* sensitivity, int N, int K,
    const models::AnyprecQuantizeOptions& options);

// CUDA devices LibTorch sees (0 without CUDA).
int CudaDeviceCount();

// Peak bytes LibTorch's CUDA caching allocator has reserved on device 0 since the process began
// (0 without CUDA).
int64_t CudaPeakReservedBytes();

}  // namespace pmpd::inference
