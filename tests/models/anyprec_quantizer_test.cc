#include "models/anyprec_quantizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/half.h"
#include "kernels/ref/anyprec_ref.h"

namespace pmpd::models {
namespace {

std::vector<float> Gaussian(int n, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = g(rng);
  return v;
}

std::vector<float> Dequant(const AnyprecMatrix& m, int bits) {
  std::vector<float> w(static_cast<size_t>(m.n) * m.k);
  kernels::AnyprecDequantRef(m.qweight.data(), m.lut(bits), m.n, m.k, m.parent_bits, bits,
                             w.data());
  return w;
}

double WeightedSse(const std::vector<float>& w, const std::vector<float>& q,
                   const std::vector<float>* f) {
  double e = 0;
  for (size_t i = 0; i < w.size(); ++i)
    e += (f ? (*f)[i] : 1.0) * (double(w[i]) - q[i]) * (double(w[i]) - q[i]);
  return e;
}

TEST(AnyprecQuantizerTest, LutsNestAndAreSorted) {
  const int N = 16, K = 172;
  const auto w = Gaussian(N * K, 1);
  auto f = Gaussian(N * K, 2, 1.f);
  for (auto& x : f) x = x * x;
  AnyprecQuantizeOptions o;
  o.seed_bits = 2;
  o.parent_bits = 7;
  const AnyprecMatrix m = QuantizeAnyprec(w.data(), f.data(), N, K, o);
  for (int n = 0; n < N; ++n) {
    for (int b = o.seed_bits; b <= o.parent_bits; ++b) {
      const uint16_t* l = m.lut(b) + (static_cast<size_t>(n) << b);
      for (int c = 1; c < (1 << b); ++c) {
        EXPECT_LE(kernels::F16ToF32(l[c - 1]), kernels::F16ToF32(l[c]))
            << "row " << n << " bits " << b;
      }
      if (b == o.parent_bits) continue;
      const uint16_t* child = m.lut(b + 1) + (static_cast<size_t>(n) << (b + 1));
      for (int c = 0; c < (1 << b); ++c) {  // children bracket their parent
        EXPECT_LE(kernels::F16ToF32(child[2 * c]), kernels::F16ToF32(l[c]))
            << "row " << n << " bits " << b;
        EXPECT_GE(kernels::F16ToF32(child[2 * c + 1]), kernels::F16ToF32(l[c]))
            << "row " << n << " bits " << b;
      }
    }
  }
}

TEST(AnyprecQuantizerTest, ErrorFallsWithBitsAndBeatsRtn) {
  const int N = 32, K = 256;
  const auto w = Gaussian(N * K, 3);
  AnyprecQuantizeOptions o;
  o.seed_bits = 2;
  o.parent_bits = 8;
  const AnyprecMatrix m = QuantizeAnyprec(w.data(), nullptr, N, K, o);
  double prev = INFINITY;
  for (int b = 2; b <= 8; ++b) {
    const double e = WeightedSse(w, Dequant(m, b), nullptr);
    EXPECT_LT(e, prev) << b << " bits";
    prev = e;
    if (b <= 4) {
      const double rtn = WeightedSse(w, QuantizeRtn(w.data(), N, K, b), nullptr);
      EXPECT_LT(e, rtn) << b << " bits";
    }
  }
}

TEST(AnyprecQuantizerTest, SensitiveWeightsAreKeptAccurately) {
  const int N = 4, K = 128;
  const auto w = Gaussian(N * K, 5);
  std::vector<float> f(N * K, 1.f);
  for (int n = 0; n < N; ++n) f[n * K + 17] = 1e6f;  // one very sensitive weight per row
  AnyprecQuantizeOptions o;
  o.seed_bits = 2;
  o.parent_bits = 2;
  const auto plain = Dequant(QuantizeAnyprec(w.data(), nullptr, N, K, o), 2);
  const auto weighted = Dequant(QuantizeAnyprec(w.data(), f.data(), N, K, o), 2);
  for (int n = 0; n < N; ++n) {
    const int i = n * K + 17;
    EXPECT_LE(std::fabs(weighted[i] - w[i]), std::fabs(plain[i] - w[i]) + 1e-6f) << "row " << n;
    EXPECT_NEAR(weighted[i], w[i],
                2e-4 * std::fabs(w[i]) + 1e-5);  // fp16 rounding of its own centroid
  }
}

TEST(AnyprecQuantizerTest, DeterministicAcrossThreadCounts) {
  const int N = 24, K = 96;
  const auto w = Gaussian(N * K, 7);
  AnyprecQuantizeOptions o;
  o.seed_bits = 3;
  o.parent_bits = 6;
  o.threads = 1;
  const AnyprecMatrix a = QuantizeAnyprec(w.data(), nullptr, N, K, o);
  o.threads = 3;
  const AnyprecMatrix b = QuantizeAnyprec(w.data(), nullptr, N, K, o);
  EXPECT_EQ(a.qweight, b.qweight);
  EXPECT_EQ(a.luts, b.luts);
}

TEST(AnyprecQuantizerTest, ConstantRowAndTinyRows) {
  std::vector<float> w = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
  AnyprecQuantizeOptions o;
  o.seed_bits = 2;
  o.parent_bits = 4;
  const auto m = QuantizeAnyprec(w.data(), nullptr, 1, 5, o);
  for (int b = 2; b <= 4; ++b) {
    for (float v : Dequant(m, b)) EXPECT_EQ(v, 0.5f);
  }
  std::vector<float> one = {-1.25f};
  const auto m1 = QuantizeAnyprec(one.data(), nullptr, 1, 1, o);
  EXPECT_EQ(Dequant(m1, 4)[0], -1.25f);
}

TEST(AnyprecQuantizerTest, RtnIsUniformOnTheRowRange) {
  const std::vector<float> w = {0.f, 0.1f, 0.49f, 0.51f, 1.f, 0.74f};
  const auto q = QuantizeRtn(w.data(), 1, 6, 2);  // levels 0, 1/3, 2/3, 1
  const std::vector<float> expected = {0.f, 0.f, 1.f / 3, 2.f / 3, 1.f, 2.f / 3};
  for (size_t i = 0; i < w.size(); ++i) EXPECT_NEAR(q[i], expected[i], 1e-6) << i;
}

}  // namespace
}  // namespace pmpd::models
