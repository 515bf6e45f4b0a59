// CPU reference of kernels/rmsnorm.cuh, same contract: y[r,:] = x[r,:] * rsqrt(mean(x^2) + eps) *
// w. The mean of squares is accumulated in double so the reference is more accurate than the
// kernel.
#pragma once

namespace pmpd::kernels {

// x, y: [rows, dim] row-major (may alias); w: [dim]. O(rows * dim); allocates nothing.
void RmsNormF32Ref(const float* x, const float* w, float* y, int rows, int dim, float eps);

// AddRmsNormF32's reference: x += delta, then RmsNormF32Ref(x) into y.
void AddRmsNormF32Ref(float* x, const float* delta, const float* w, float* y, int rows, int dim,
                      float eps);

}  // namespace pmpd::kernels
