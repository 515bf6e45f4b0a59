#include "kernels/ref/rmsnorm_ref.h"

#include <cmath>
#include <cstddef>

namespace pmpd::kernels {

void RmsNormF32Ref(const float* x, const float* w, float* y, int rows, int dim, float eps) {
  for (int r = 0; r < rows; ++r) {
    const float* xr = x + static_cast<size_t>(r) * dim;
    float* yr = y + static_cast<size_t>(r) * dim;
    double sum = 0.0;
    for (int i = 0; i < dim; ++i) sum += static_cast<double>(xr[i]) * xr[i];
    const float scale = static_cast<float>(1.0 / std::sqrt(sum / dim + eps));
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * scale * w[i];
  }
}

void AddRmsNormF32Ref(float* x, const float* delta, const float* w, float* y, int rows, int dim,
                      float eps) {
  for (size_t i = 0; i < static_cast<size_t>(rows) * dim; ++i) x[i] += delta[i];
  RmsNormF32Ref(x, w, y, rows, dim, eps);
}

}  // namespace pmpd::kernels
