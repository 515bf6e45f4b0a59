// GPU tests (label `gpu`): the any-precision GEMV and dequantize kernels against the CPU reference
// over bit widths, token counts and shapes with tails (K = 172, partial 1024-column chunks, odd N),
// every path (auto, code-word, tensor-core, generic), activations with an outlier and a zero token.
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/anyprec_gemv.cuh"
#include "kernels/half.h"
#include "kernels/ref/anyprec_ref.h"
#include "kernels/ref/rmsnorm_ref.h"
#include "kernels/rmsnorm.cuh"
#include "tests/kernels/gpu_test_util.h"

namespace pmpd::kernels {
namespace {

template <typename T>
T* ToDevice(const std::vector<T>& v) {
  T* d = nullptr;
  EXPECT_EQ(cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T)), cudaSuccess);
  cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}

struct Problem {
  int N, K, P;
  std::vector<uint32_t> qweight;
  std::vector<std::vector<uint16_t>> luts;  // index p
};

Problem MakeProblem(int N, int K, int P, std::mt19937& rng) {
  Problem pr{N, K, P, {}, {}};
  pr.qweight.resize(static_cast<size_t>(P) * N * AnyprecWordsPerRow(K));
  for (auto& w : pr.qweight) w = rng();  // any bits: padding columns must be ignored
  std::normal_distribution<float> g(0.f, 0.05f);
  pr.luts.resize(P + 1);
  for (int p = 2; p <= P; ++p) {
    pr.luts[p].resize(static_cast<size_t>(N) << p);
    for (auto& l : pr.luts[p]) l = F32ToF16(g(rng));
  }
  return pr;
}

// Every path: auto (code-word or tensor-core by token count and N), each forced, and the generic
// per-weight LUT kernel. The tensor-core path serves p <= 4 only.
class AnyprecGemvPathTest : public ::testing::TestWithParam<AnyprecGemvPath> {};

TEST_P(AnyprecGemvPathTest, MatchesCpuReferenceOverBitsTokensAndShapes) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.f, 1.f);
  const bool tensor = GetParam() == AnyprecGemvPath::kTensorCore;
  void* workspace = nullptr;
  const size_t workspace_bytes = AnyprecGemvWorkspaceBytes(8, 11008);
  ASSERT_EQ(cudaMalloc(&workspace, workspace_bytes), cudaSuccess);
  int cases = 0;
  for (auto [N, K] : {std::pair<int, int>{1, 32},
                      {7, 172},
                      {5, 174},
                      {33, 1024},
                      {64, 1056},
                      {257, 2088},
                      {96, 4096},
                      {13, 11008}}) {
    for (int P : {8, 4}) {
      Problem pr = MakeProblem(N, K, P, rng);
      uint32_t* dq = ToDevice(pr.qweight);
      for (int p = 2; p <= (tensor ? 4 : P); ++p) {
        __half* dl = reinterpret_cast<__half*>(ToDevice(pr.luts[p]));
        for (int M : {1, 2, 3, 8}) {
          std::vector<float> x(static_cast<size_t>(M) * K), ref(static_cast<size_t>(M) * N),
              got(ref.size());
          for (auto& v : x) v = g(rng);
          x[K / 2] = 1000.f;                                 // an outlier in token 0
          if (M == 8) std::fill(x.end() - K, x.end(), 0.f);  // a zero token
          AnyprecGemmRef(x.data(), M, pr.qweight.data(), pr.luts[p].data(), N, K, P, p, ref.data());
          // M == 3 reads x from a pointer that is not 16-byte aligned (the scalar-load path).
          const int offset = M == 3 ? 1 : 0;
          float* dbase = nullptr;
          ASSERT_EQ(cudaMalloc(&dbase, (x.size() + 1) * 4), cudaSuccess);
          float* dx = dbase + offset;
          cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
          float* dy = nullptr;
          ASSERT_EQ(cudaMalloc(&dy, ref.size() * 4), cudaSuccess);
          cudaMemset(dy, 0xff, ref.size() * 4);  // NaN poison
          AnyprecGemv(dx, M, dq, dl, N, K, P, p, dy, nullptr, GetParam(), false, workspace,
                      workspace_bytes);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          cudaMemcpy(got.data(), dy, got.size() * 4, cudaMemcpyDeviceToHost);
          // fp32 accumulation of K products in a different order from the double reference:
          // |error| <= ~ K * eps * sum|x w| in the worst case, sqrt(K) typically; bound with 2
          // sqrt(K). The tensor cores may round each 16-product step's sum toward zero (K / 16
          // steps), and x enters as hi + lo fp16 halves: each x off by up to 2^-24 of its token's
          // max |x| (bound with 2^-23 * max|x| * sum|w|).
          std::vector<float> w(static_cast<size_t>(N) * K);
          AnyprecDequantRef(pr.qweight.data(), pr.luts[p].data(), N, K, P, p, w.data());
          const bool mma = tensor || (GetParam() == AnyprecGemvPath::kAuto && p <= 4 &&
                                      (M >= 5 || (M >= 3 && N >= 8192)));
          for (int m = 0; m < M; ++m) {
            double xmax = 0;
            for (int k = 0; k < K; ++k) xmax = std::max(xmax, double(std::fabs(x[m * K + k])));
            for (int n = 0; n < N; ++n) {
              double mag = 0, wsum = 0;
              for (int k = 0; k < K; ++k) {
                const double wk = w[static_cast<size_t>(n) * K + k];
                mag += std::fabs(double(x[m * K + k]) * wk);
                wsum += std::fabs(wk);
              }
              double tol = 2.0 * std::sqrt(double(K)) * 1.2e-7 * mag + 1e-30;
              if (mma) tol += K / 16.0 * 1.2e-7 * mag + std::ldexp(xmax * wsum, -23);
              ASSERT_NEAR(got[m * N + n], ref[m * N + n], tol)
                  << "N " << N << " K " << K << " P " << P << " p " << p << " M " << M << " at m "
                  << m << " n " << n;
            }
          }
          cudaFree(dbase);
          cudaFree(dy);
          ++cases;
        }
        cudaFree(dl);
      }
      cudaFree(dq);
    }
  }
  EXPECT_EQ(cases, 8 * (tensor ? 3 + 3 : 7 + 3) * 4);
  cudaFree(workspace);
}

INSTANTIATE_TEST_SUITE_P(Paths, AnyprecGemvPathTest,
                         ::testing::Values(AnyprecGemvPath::kAuto, AnyprecGemvPath::kGeneric,
                                           AnyprecGemvPath::kCodeWord,
                                           AnyprecGemvPath::kTensorCore),
                         [](const auto& info) -> std::string {
                           switch (info.param) {
                             case AnyprecGemvPath::kAuto:
                               return "Auto";
                             case AnyprecGemvPath::kGeneric:
                               return "Generic";
                             case AnyprecGemvPath::kCodeWord:
                               return "CodeWord";
                             case AnyprecGemvPath::kTensorCore:
                               return "TensorCore";
                           }
                           return "?";
                         });

// The overlapped launch (programmatic dependent launch) must still read x only after the kernel
// that writes it: a RMSNorm writes x over a NaN-poisoned buffer right before every GEMV; 20 rounds
// with fresh inputs, so reading a stale x cannot pass by luck; the code-word and tensor-core paths
// alternate.
TEST(AnyprecGemvGpuTest, OverlappedLaunchWaitsForThePreviousKernel) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(13);
  std::normal_distribution<float> g(0.f, 1.f);
  const int N = 4096, K = 4096, P = 4, M = 1;
  void* workspace = nullptr;
  const size_t workspace_bytes = AnyprecGemvWorkspaceBytes(M, K);
  ASSERT_EQ(cudaMalloc(&workspace, workspace_bytes), cudaSuccess);
  Problem pr = MakeProblem(N, K, P, rng);
  uint32_t* dq = ToDevice(pr.qweight);
  std::vector<float> w(K);
  for (auto& v : w) v = 1.f + 0.1f * g(rng);
  float* dw = ToDevice(w);
  float *draw = nullptr, *dx = nullptr, *dy = nullptr;
  ASSERT_EQ(cudaMalloc(&draw, K * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dx, K * 4), cudaSuccess);
  ASSERT_EQ(cudaMalloc(&dy, N * 4), cudaSuccess);
  cudaStream_t stream;
  ASSERT_EQ(cudaStreamCreate(&stream), cudaSuccess);
  for (int round = 0; round < 20; ++round) {
    const int p = 2 + round % 3;
    __half* dl = reinterpret_cast<__half*>(ToDevice(pr.luts[p]));
    std::vector<float> raw(K), x(K), ref(N), got(N);
    for (auto& v : raw) v = g(rng);
    RmsNormF32Ref(raw.data(), w.data(), x.data(), 1, K, 1e-5f);
    AnyprecGemmRef(x.data(), M, pr.qweight.data(), pr.luts[p].data(), N, K, P, p, ref.data());
    cudaMemcpyAsync(draw, raw.data(), K * 4, cudaMemcpyHostToDevice, stream);
    cudaMemsetAsync(dx, 0xff, K * 4, stream);  // NaN until the norm has run
    RmsNormF32(draw, dw, dx, 1, K, 1e-5f, stream);
    // Odd rounds through the tensor-core path: its preparation kernel waits for the norm, the
    // GEMV for the preparation.
    AnyprecGemv(dx, M, dq, dl, N, K, P, p, dy, stream,
                round % 2 == 1 ? AnyprecGemvPath::kTensorCore : AnyprecGemvPath::kAuto,
                /*overlap_previous=*/true, workspace, workspace_bytes);
    ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
    cudaMemcpy(got.data(), dy, N * 4, cudaMemcpyDeviceToHost);
    for (int n = 0; n < N; ++n) {
      ASSERT_NEAR(got[n], ref[n], 1e-3 * (1 + std::fabs(ref[n])))
          << "round " << round << " p " << p << " row " << n;
    }
    cudaFree(dl);
  }
  cudaStreamDestroy(stream);
  cudaFree(workspace);
  cudaFree(dq);
  cudaFree(dw);
  cudaFree(draw);
  cudaFree(dx);
  cudaFree(dy);
}

TEST(AnyprecGemvGpuTest, DequantizeIsExact) {
  PMPD_REQUIRE_GPU();
  std::mt19937 rng(12);
  for (auto [N, K] : {std::pair<int, int>{5, 172}, {33, 1056}, {16, 3000}}) {
    Problem pr = MakeProblem(N, K, 8, rng);
    uint32_t* dq = ToDevice(pr.qweight);
    for (int p = 2; p <= 8; ++p) {
      __half* dl = reinterpret_cast<__half*>(ToDevice(pr.luts[p]));
      __half* dw = nullptr;
      ASSERT_EQ(cudaMalloc(&dw, static_cast<size_t>(N) * K * 2), cudaSuccess);
      cudaMemset(dw, 0xff, static_cast<size_t>(N) * K * 2);
      AnyprecDequant(dq, dl, N, K, 8, p, dw, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<uint16_t> got(static_cast<size_t>(N) * K);
      cudaMemcpy(got.data(), dw, got.size() * 2, cudaMemcpyDeviceToHost);
      std::vector<float> ref(got.size());
      AnyprecDequantRef(pr.qweight.data(), pr.luts[p].data(), N, K, 8, p, ref.data());
      for (size_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(F16ToF32(got[i]), ref[i])
            << "N " << N << " K " << K << " p " << p << " index " << i;
      }
      float* dw32 = nullptr;
      ASSERT_EQ(cudaMalloc(&dw32, static_cast<size_t>(N) * K * 4), cudaSuccess);
      cudaMemset(dw32, 0xff, static_cast<size_t>(N) * K * 4);
      AnyprecDequantF32(dq, dl, N, K, 8, p, dw32, nullptr);
      ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
      std::vector<float> got32(ref.size());
      cudaMemcpy(got32.data(), dw32, got32.size() * 4, cudaMemcpyDeviceToHost);
      EXPECT_EQ(got32, ref) << "fp32 dequantize, N " << N << " K " << K << " p " << p;
      cudaFree(dw32);
      cudaFree(dw);
      cudaFree(dl);
    }
    cudaFree(dq);
  }
}

}  // namespace
}  // namespace pmpd::kernels
