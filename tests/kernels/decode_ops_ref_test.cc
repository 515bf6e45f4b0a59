#include "kernels/ref/decode_ops_ref.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/half.h"
#include "kernels/random_hash.h"
#include "kernels/ref/random_fill_ref.h"

namespace pmpd::kernels {
namespace {

TEST(DecodeOpsRefTest, RotaryByHand) {
  // head_dim 4, position 1: cos = [c0, c1, c0, c1], sin likewise; x = [1, 2, 3, 4].
  const float c0 = std::cos(1.f), c1 = std::cos(0.01f), s0 = std::sin(1.f), s1 = std::sin(0.01f);
  std::vector<float> cos = {1, 1, 1, 1, c0, c1, c0, c1}, sin = {0, 0, 0, 0, s0, s1, s0, s1};
  std::vector<float> x = {1, 2, 3, 4};
  const int32_t pos[1] = {1};
  RotaryInPlaceRef(x.data(), pos, cos.data(), sin.data(), 1, 1, 4);
  EXPECT_FLOAT_EQ(x[0], 1 * c0 - 3 * s0);
  EXPECT_FLOAT_EQ(x[1], 2 * c1 - 4 * s1);
  EXPECT_FLOAT_EQ(x[2], 3 * c0 + 1 * s0);
  EXPECT_FLOAT_EQ(x[3], 4 * c1 + 2 * s1);
  const int32_t zero[1] = {0};
  std::vector<float> y = {1, 2, 3, 4};
  RotaryInPlaceRef(y.data(), zero, cos.data(), sin.data(), 1, 1, 4);
  EXPECT_EQ(y, std::vector<float>({1, 2, 3, 4}));
}

TEST(DecodeOpsRefTest, AttentionByHand) {
  // 2 heads sharing 1 kv head, head_dim 2, max_len 3, len 2; equal keys: the mean of the values.
  const std::vector<float> q = {1, 0, 0, 1};
  const std::vector<float> k = {1, 1, 1, 1, 9, 9}, v = {2, 4, 6, 8, 100, 100};
  std::vector<float> out(4);
  DecodeAttentionRef(q.data(), k.data(), v.data(), 2, 1, 2, 3, 2, out.data());
  EXPECT_EQ(out, std::vector<float>({4, 6, 4, 6}));
  DecodeAttentionRef(q.data(), k.data(), v.data(), 2, 1, 2, 3, 1,
                     out.data());  // one position: its value
  EXPECT_EQ(out, std::vector<float>({2, 4, 2, 4}));
}

TEST(DecodeOpsRefTest, ElementwiseAndArgmax) {
  std::vector<float> y = {1, 2}, x = {3, -5};
  AddInPlaceRef(y.data(), x.data(), 2);
  EXPECT_EQ(y, std::vector<float>({4, -3}));
  std::vector<float> g = {0, 2}, u = {5, 3}, o(2);
  SwiGluRef(g.data(), u.data(), o.data(), 2);
  EXPECT_FLOAT_EQ(o[0], 0.f);
  EXPECT_FLOAT_EQ(o[1], 2.f / (1.f + std::exp(-2.f)) * 3.f);
  const std::vector<float> m = {1, 5, 5, 0, -1, -2};
  int32_t idx[2];
  ArgmaxRowsRef(m.data(), 2, 3, idx);
  EXPECT_EQ(idx[0], 1);  // tie: lowest index
  EXPECT_EQ(idx[1], 0);
  const std::vector<float> table = {0, 1, 10, 11, 20, 21};
  const int32_t ids[2] = {2, 0};
  float e[4];
  EmbeddingLookupRef(table.data(), ids, 2, 2, e);
  EXPECT_EQ(std::vector<float>(e, e + 4), std::vector<float>({20, 21, 0, 1}));
}

// The random-weight references: splitmix64's published first outputs for seed 0 (index i uses
// state seed + golden * (i + 1)), values inside their range, and the nested LUT grid the CUDA
// engine's random models rely on (entry c at b bits = mean of entries 2c, 2c + 1 at b + 1 bits).
TEST(DecodeOpsRefTest, RandomFillReferences) {
  EXPECT_EQ(RandomHash(0, 0), 0xe220a8397b1dcdafull);
  EXPECT_EQ(RandomHash(0, 1), 0x6e789e6aa1b965f4ull);
  std::vector<float> u(10000);
  FillUniformF32Ref(u.data(), u.size(), -2.f, 3.f, 7);
  float lo = 1e9f, hi = -1e9f;
  for (float v : u) lo = std::min(lo, v), hi = std::max(hi, v);
  EXPECT_GE(lo, -2.f);
  EXPECT_LT(hi, 3.f);
  EXPECT_LT(lo, -1.9f);  // the range is covered
  EXPECT_GT(hi, 2.9f);
  const int rows = 50;
  std::vector<uint16_t> l3(rows << 3), l4(rows << 4);
  FillGridLutRef(l3.data(), rows, 3, 0.5f, 11);
  FillGridLutRef(l4.data(), rows, 4, 0.5f, 11);
  for (int r = 0; r < rows; ++r) {
    for (int c = 0; c < 8; ++c) {
      const float mean = 0.5f * (F16ToF32(l4[r * 16 + 2 * c]) + F16ToF32(l4[r * 16 + 2 * c + 1]));
      EXPECT_NEAR(F16ToF32(l3[r * 8 + c]), mean, 1e-3) << r << " " << c;
    }
    EXPECT_LE(std::fabs(F16ToF32(l4[r * 16])), 0.5f);
    EXPECT_GE(std::fabs(F16ToF32(l4[r * 16])), 0.5f * 0.5f * 15 / 16 - 1e-3);
  }
}

}  // namespace
}  // namespace pmpd::kernels
