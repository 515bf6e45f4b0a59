// GPU test (label `gpu`): the CUDA RMSNorm against its CPU reference over shapes.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/ref/rmsnorm_ref.h"
#include "kernels/rmsnorm.cuh"
#include "tests/kernels/gpu_test_util.h"

namespace pmpd::kernels {
namespace {

TEST(RmsNormGpuTest, MatchesCpuReference) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 2.f);
  for (int rows : {1, 3, 17}) {
    for (int dim : {1, 31, 64, 172, 4096, 5000, 20000}) {
      std::vector<float> x(rows * dim), w(dim), ref(rows * dim), got(rows * dim, NAN);
      for (auto& v : x) v = n(rng);
      for (auto& v : w) v = n(rng);
      RmsNormF32Ref(x.data(), w.data(), ref.data(), rows, dim, 1e-5f);
      float *dx, *dw, *dy;
      ASSERT_EQ(cudaMalloc(&dx, x.size() * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&dw, w.size() * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(&dy, x.size() * 4), cudaSuccess);
      cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
      cudaMemcpy(dw, w.data(), w.size() * 4, cudaMemcpyHostToDevice);
      cudaMemset(dy, 0xff, x.size() * 4);  // poison: NaN unless written
      RmsNormF32(dx, dw, dy, rows, dim, 1e-5f, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      cudaMemcpy(got.data(), dy, x.size() * 4, cudaMemcpyDeviceToHost);
      cudaFree(dx);
      cudaFree(dw);
      cudaFree(dy);
      // fp32 sum of dim squares: relative error <= ~dim * eps; y = x * w * scale.
      const double tol_rel = 4.0 * dim * 1.2e-7 + 1e-6;
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_NEAR(got[i], ref[i], tol_rel * std::fabs(ref[i]) + 1e-6)
            << "rows " << rows << " dim " << dim << " index " << i;
      }
    }
  }
}

// The fused residual add + norm: x updated in place exactly as x + delta, y as the reference norm.
TEST(RmsNormGpuTest, AddRmsNormMatchesCpuReference) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(2);
  std::normal_distribution<float> n(0.f, 2.f);
  for (int rows : {1, 5}) {
    for (int dim : {1, 64, 172, 4096, 5000, 20000}) {
      std::vector<float> x(rows * dim), d(rows * dim), w(dim), y_ref(rows * dim);
      for (auto& v : x) v = n(rng);
      for (auto& v : d) v = n(rng);
      for (auto& v : w) v = n(rng);
      pmpd::testing::Dev<float> dx(x), dd(d), dw(w), dy(std::vector<float>(x.size(), NAN));
      AddRmsNormF32(dx.p, dd.p, dw.p, dy.p, rows, dim, 1e-5f, nullptr);
      std::vector<float> x_ref = x;
      AddRmsNormF32Ref(x_ref.data(), d.data(), w.data(), y_ref.data(), rows, dim, 1e-5f);
      EXPECT_EQ(dx.Get(), x_ref) << "the residual sum is one fp32 add on both sides";
      const std::vector<float> y = dy.Get();
      const double tol_rel = 4.0 * dim * 1.2e-7 + 1e-6;
      for (size_t i = 0; i < y.size(); ++i) {
        ASSERT_NEAR(y[i], y_ref[i], tol_rel * std::fabs(y_ref[i]) + 1e-6)
            << "rows " << rows << " dim " << dim << " index " << i;
      }
    }
  }
}

}  // namespace
}  // namespace pmpd::kernels
