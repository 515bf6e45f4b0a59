// RMSNorm on the GPU: y[r, :] = x[r, :] * rsqrt(mean(x[r, :]^2) + eps) * w[:], fp32.
// Host launcher only; the CPU reference with the same contract is kernels/ref/rmsnorm_ref.h.
#pragma once

#include <cuda_runtime.h>

namespace pmpd::kernels {

// x, y: device [rows, dim] row-major (may alias); w: device [dim]. Asynchronous on `stream`.
void RmsNormF32(const float* x, const float* w, float* y, int rows, int dim, float eps,
                cudaStream_t stream);

// The residual add fused with the next norm (one launch instead of two in the decode step):
// x[r,:] += delta[r,:], then y[r,:] = RMSNorm(x[r,:]) * w. x is updated in place; y must not alias
// x.
void AddRmsNormF32(float* x, const float* delta, const float* w, float* y, int rows, int dim,
                   float eps, cudaStream_t stream);

}  // namespace pmpd::kernels
