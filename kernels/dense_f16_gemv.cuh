// The fp16 dense GEMV of the decode step (fp16 models' projections, the fp16 lm_head). CPU
// reference: kernels/ref/decode_ops_ref.h.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// y[M, N] = x[M, K] * W^T for fp16 weights W [N, K] row-major and fp32 x, y (the fp16 model's
// decode projections and the fp16 lm_head): fp32 accumulation, no fp16 rounding of x. 1 <= M <= 8,
// any N, K. With `overlap_previous` it is a programmatic dependent launch (kernels/pdl.cuh) that
// waits for the preceding kernel before reading x. Reads W once (2 N K bytes): memory-bound.
// Reference: DenseF16GemvRef.
void DenseF16Gemv(const float* x, int M, const __half* w, int N, int K, float* y,
                  cudaStream_t stream, bool overlap_previous = false);

}  // namespace pmpd::kernels
