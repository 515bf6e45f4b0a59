// GPU tests (label `gpu`): any-precision quantization on the GPU (kernels/anyprec_quantize.cuh)
// equals the CPU reference bit for bit (codes, every level's LUT, packed planes) over shapes with
// tails (K = 1, 7, 33, 172, 1064), seed/parent pairs from 1..1 to 2..8, sensitivities absent,
// random, partly zero and all zero, rows with repeated values, zeros of both signs and one value
// only, and batches smaller than the matrix.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/anyprec_quantize.cuh"
#include "kernels/ref/anyprec_quantize_ref.h"
#include "kernels/ref/anyprec_ref.h"
#include "tests/kernels/gpu_test_util.h"

namespace pmpd::kernels {
namespace {

using testing::Dev;

enum class Weights { kNormal, kFewValues, kSignedZeros, kConstant };
enum class Sens { kNone, kRandom, kSomeZero, kAllZero };

struct Case {
  int N, K, S, P;
  Weights weights;
  Sens sens;
  int rows_per_batch;
};

std::string Name(const Case& c) {
  return "N" + std::to_string(c.N) + "_K" + std::to_string(c.K) + "_S" + std::to_string(c.S) +
         "_P" + std::to_string(c.P) + "_w" + std::to_string(static_cast<int>(c.weights)) + "_f" +
         std::to_string(static_cast<int>(c.sens)) + "_b" + std::to_string(c.rows_per_batch);
}

void Check(const Case& c, uint64_t seed) {
  SCOPED_TRACE(Name(c));
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::normal_distribution<float> g(0.f, 0.02f);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  const size_t n = static_cast<size_t>(c.N) * c.K;
  std::vector<float> w(n), f(n);
  for (size_t i = 0; i < n; ++i) {
    switch (c.weights) {
      case Weights::kNormal:
        w[i] = g(rng);
        break;
      case Weights::kFewValues:
        w[i] = 0.01f * static_cast<float>(static_cast<int>(u(rng) * 5));
        break;
      case Weights::kSignedZeros:
        w[i] = u(rng) < 0.3f ? -0.0f : u(rng) < 0.5f ? 0.0f : g(rng);
        break;
      case Weights::kConstant:
        w[i] = 0.125f;
        break;
    }
    const float s = u(rng);
    f[i] = c.sens == Sens::kRandom     ? s * s * s
           : c.sens == Sens::kSomeZero ? (u(rng) < 0.5f ? 0.f : s)
                                       : 0.f;
  }
  const float* fh = c.sens == Sens::kNone ? nullptr : f.data();
  const int lut_floats = AnyprecLutFloats(c.S, c.P);
  std::vector<uint8_t> codes(n);
  std::vector<float> luts(static_cast<size_t>(c.N) * lut_floats);
  for (int r = 0; r < c.N; ++r) {
    const size_t off = static_cast<size_t>(r) * c.K;
    AnyprecQuantizeRowRef(w.data() + off, fh ? fh + off : nullptr, c.K, c.S, c.P, 50, seed ^ r,
                          codes.data() + off, luts.data() + static_cast<size_t>(r) * lut_floats);
  }
  std::vector<uint32_t> qweight(static_cast<size_t>(c.P) * c.N * AnyprecWordsPerRow(c.K));
  AnyprecPackRef(codes.data(), c.N, c.K, c.P, qweight.data());

  Dev<float> dw(w), df(f);
  Dev<uint8_t> dcodes(std::vector<uint8_t>(n, 0xff));
  Dev<float> dluts(std::vector<float>(luts.size(), NAN));
  Dev<uint32_t> dq(std::vector<uint32_t>(qweight.size(), 0xdeadbeef));
  const size_t scratch_bytes = AnyprecQuantizeScratchBytes(c.rows_per_batch, c.K);
  void* scratch = nullptr;
  ASSERT_EQ(cudaMalloc(&scratch, scratch_bytes), cudaSuccess);
  AnyprecQuantizeRowsCuda(dw.p, fh ? df.p : nullptr, c.N, c.K, c.S, c.P, 50, seed, c.rows_per_batch,
                          scratch, scratch_bytes, dcodes.p, dluts.p, nullptr);
  AnyprecPackCuda(dcodes.p, c.N, c.K, c.P, dq.p, nullptr);
  const std::vector<uint8_t> gcodes = dcodes.Get();
  const std::vector<float> gluts = dluts.Get();
  const std::vector<uint32_t> gq = dq.Get();
  cudaFree(scratch);
  int code_diffs = 0;
  for (size_t i = 0; i < n; ++i) code_diffs += gcodes[i] != codes[i];
  EXPECT_EQ(code_diffs, 0) << "of " << n << " codes";
  EXPECT_EQ(std::memcmp(gluts.data(), luts.data(), luts.size() * sizeof(float)), 0)
      << "LUTs differ (first entries: GPU " << gluts[0] << ", CPU " << luts[0] << ")";
  EXPECT_EQ(gq, qweight);
}

TEST(AnyprecQuantizeGpuTest, EqualsCpuReferenceBitForBit) {
  PMPD_REQUIRE_GPU();
  const std::vector<Case> cases = {
      {1, 1, 1, 1, Weights::kNormal, Sens::kNone, 1},
      {3, 7, 2, 4, Weights::kNormal, Sens::kRandom, 3},
      {5, 33, 2, 8, Weights::kNormal, Sens::kRandom, 2},
      {17, 172, 2, 8, Weights::kNormal, Sens::kRandom, 5},
      {17, 172, 3, 6, Weights::kFewValues, Sens::kSomeZero, 17},
      {9, 1064, 2, 8, Weights::kSignedZeros, Sens::kRandom, 4},
      {9, 1064, 2, 8, Weights::kNormal, Sens::kAllZero, 9},
      {6, 300, 2, 2, Weights::kConstant, Sens::kRandom, 6},
      {6, 300, 4, 8, Weights::kNormal, Sens::kNone, 6},
      {4, 520, 8, 8, Weights::kNormal, Sens::kRandom, 4},
      // Fewer distinct values than centres (k-means++ picks at random among equal points), with
      // zeros of both signs: 32 and 64 centres sorted with ties.
      {7, 40, 5, 8, Weights::kSignedZeros, Sens::kRandom, 7},
      {5, 64, 6, 8, Weights::kFewValues, Sens::kNone, 5},
      {5, 64, 6, 8, Weights::kSignedZeros, Sens::kAllZero, 5},
      {300, 4096, 2, 8, Weights::kNormal, Sens::kRandom, 128},
  };
  uint64_t seed = 7;
  for (const Case& c : cases) Check(c, seed++);
}

}  // namespace
}  // namespace pmpd::kernels
