#include "kernels/ref/anyprec_ref.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "kernels/half.h"
#include "models/safetensors.h"
#include "tests/test_util.h"

namespace pmpd::kernels {
namespace {

TEST(AnyprecRefTest, BitPositionWorkedExample) {
  int word, bit;
  AnyprecBitPosition(4096, 1300, &word, &bit);  // spec: word 34, bit 19 (mask 0x00080000)
  EXPECT_EQ(word, 34);
  EXPECT_EQ(bit, 19);
  AnyprecBitPosition(1056, 1024 + 9, &word, &bit);  // partial chunk with T = 1: s = 1, t = 0, r = 1
  EXPECT_EQ(word, 32);
  EXPECT_EQ(bit, 31 - 8 - 1);
}

TEST(AnyprecRefTest, SpecWorkedExampleGemv) {
  // One row, P = 8, parent codes [182, 37, 250, 96], x = [1, -2, 0.5, 4]: y3 = 0.745, y4 = 0.78.
  const int N = 1, K = 4, P = 8;
  const uint8_t codes[4] = {182, 37, 250, 96};
  std::vector<uint32_t> q(P * N * AnyprecWordsPerRow(K));
  AnyprecPackRef(codes, N, K, P, q.data());
  const float lut3f[8] = {-0.50f, -0.30f, -0.15f, -0.05f, 0.04f, 0.12f, 0.25f, 0.45f};
  std::vector<uint16_t> lut3(8), lut4(16, F32ToF16(9.f));
  for (int i = 0; i < 8; ++i) lut3[i] = F32ToF16(lut3f[i]);
  lut4[2] = F32ToF16(-0.33f);
  lut4[6] = F32ToF16(-0.07f);
  lut4[11] = F32ToF16(0.14f);
  lut4[15] = F32ToF16(0.52f);
  const float x[4] = {1, -2, 0.5f, 4};
  float y;
  AnyprecGemmRef(x, 1, q.data(), lut3.data(), N, K, P, 3, &y);
  EXPECT_NEAR(y, 0.745, 2e-3);  // fp16 LUT rounding: |x| * 2^-11 * |w| summed
  AnyprecGemmRef(x, 1, q.data(), lut4.data(), N, K, P, 4, &y);
  EXPECT_NEAR(y, 0.78, 2e-3);
  uint8_t top3[4];
  AnyprecUnpackRef(q.data(), N, K, P, 3, top3);
  EXPECT_EQ(std::vector<int>(top3, top3 + 4), std::vector<int>({5, 1, 7, 3}));
}

TEST(AnyprecRefTest, PackUnpackRoundTripsOverShapes) {
  std::mt19937 rng(3);
  for (int P : {2, 3, 4, 8}) {
    for (int K : {1, 31, 32, 172, 1024, 1056, 2088}) {
      for (int N : {1, 3}) {
        std::vector<uint8_t> codes(N * K), back(N * K);
        for (auto& c : codes) c = rng() % (1 << P);
        std::vector<uint32_t> q(P * N * AnyprecWordsPerRow(K), 0xdeadbeef);
        AnyprecPackRef(codes.data(), N, K, P, q.data());
        for (int p = 1; p <= P; ++p) {
          AnyprecUnpackRef(q.data(), N, K, P, p, back.data());
          for (int i = 0; i < N * K; ++i) {
            ASSERT_EQ(back[i], codes[i] >> (P - p))
                << "P " << P << " K " << K << " p " << p << " index " << i;
          }
        }
      }
    }
  }
}

TEST(AnyprecRefTest, GemmEqualsDequantizedProduct) {
  std::mt19937 rng(4);
  std::normal_distribution<float> g(0.f, 1.f);
  const int N = 5, K = 172, P = 6, M = 3;
  std::vector<uint8_t> codes(N * K);
  for (auto& c : codes) c = rng() % (1 << P);
  std::vector<uint32_t> q(P * N * AnyprecWordsPerRow(K));
  AnyprecPackRef(codes.data(), N, K, P, q.data());
  std::vector<float> x(M * K);
  for (auto& v : x) v = g(rng);
  for (int p = 2; p <= P; ++p) {
    std::vector<uint16_t> lut(N << p);
    for (auto& l : lut) l = F32ToF16(0.1f * g(rng));
    std::vector<float> w(N * K), y(M * N);
    AnyprecDequantRef(q.data(), lut.data(), N, K, P, p, w.data());
    AnyprecGemmRef(x.data(), M, q.data(), lut.data(), N, K, P, p, y.data());
    for (int m = 0; m < M; ++m) {
      for (int n = 0; n < N; ++n) {
        double ref = 0, mag = 0;
        for (int k = 0; k < K; ++k) {
          ref += double(x[m * K + k]) * w[n * K + k];
          mag += std::fabs(double(x[m * K + k]) * w[n * K + k]);
          EXPECT_EQ(w[n * K + k], F16ToF32(lut[(n << p) + (codes[n * K + k] >> (P - p))]));
        }
        EXPECT_NEAR(y[m * N + n], ref,
                    4 * 1.2e-7 * mag + 1e-7);  // one float rounding of a double sum
      }
    }
  }
}

// The packer's own output for a K = 1056 matrix (one full chunk + a T = 1 chunk), P = 8, S = 3.
TEST(AnyprecRefTest, DecodesPackerFixtureWithPartialChunk) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/tail.safetensors");
  auto f = models::SafetensorsFile::Open(
      pmpd::testing::SharedPath("fixtures/anyprec-tiny/tail.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status();
  const auto& t = (*f)->tensors();
  const auto& q = t.at("tail.qweight");
  ASSERT_EQ(q.shape, std::vector<int64_t>({8, 8, 33}));
  const int N = 8, K = 1056, P = 8;
  std::vector<uint32_t> qw(q.nbytes / 4);
  std::memcpy(qw.data(), q.data, q.nbytes);
  std::vector<uint8_t> codes(N * K);
  AnyprecUnpackRef(qw.data(), N, K, P, P, codes.data());
  EXPECT_EQ(0, std::memcmp(codes.data(), t.at("tail.codes").data, codes.size()));
  for (int p = 3; p <= 8; ++p) {
    const auto& lut = t.at("tail.lut" + std::to_string(p));
    std::vector<uint16_t> l(lut.nbytes / 2);
    std::memcpy(l.data(), lut.data, lut.nbytes);
    std::vector<float> w(N * K), expected(N * K);
    AnyprecDequantRef(qw.data(), l.data(), N, K, P, p, w.data());
    std::memcpy(expected.data(), t.at("tail.w" + std::to_string(p)).data, expected.size() * 4);
    for (int i = 0; i < N * K; ++i) ASSERT_EQ(w[i], expected[i]) << "p " << p << " index " << i;
  }
}

}  // namespace
}  // namespace pmpd::kernels
