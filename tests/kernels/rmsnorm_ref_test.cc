#include "kernels/ref/rmsnorm_ref.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace pmpd::kernels {
namespace {

TEST(RmsNormRefTest, MatchesHandComputedRow) {
  // x = [3, 4]: mean(x^2) = 12.5, scale = 1/sqrt(12.5 + eps).
  const float x[2] = {3.f, 4.f}, w[2] = {1.f, 2.f};
  float y[2];
  RmsNormF32Ref(x, w, y, 1, 2, 0.f);
  EXPECT_FLOAT_EQ(y[0], 3.f / std::sqrt(12.5f));
  EXPECT_FLOAT_EQ(y[1], 8.f / std::sqrt(12.5f));
}

TEST(RmsNormRefTest, OutputHasUnitRmsWithUnitWeights) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 3.f);
  for (int dim : {1, 7, 64, 1000}) {
    std::vector<float> x(2 * dim), w(dim, 1.f), y(2 * dim);
    for (auto& v : x) v = n(rng);
    RmsNormF32Ref(x.data(), w.data(), y.data(), 2, dim, 1e-6f);
    for (int r = 0; r < 2; ++r) {
      double ss = 0;
      for (int i = 0; i < dim; ++i) ss += double(y[r * dim + i]) * y[r * dim + i];
      EXPECT_NEAR(std::sqrt(ss / dim), 1.0, 1e-4) << "dim " << dim;
    }
  }
}

}  // namespace
}  // namespace pmpd::kernels
