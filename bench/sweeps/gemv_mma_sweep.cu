// Sweep of the tensor-core any-precision GEMV (v10, kernels/anyprec_gemv_mma_kernel.cuh) against
// the code-word kernel (v7) per bit width, shape and token count. Every configuration's output is
// compared with v7's on the same weights before it is timed (MISMATCH past 1e-4 relative).
// Standalone (no CMake, no library, not built by CI): built and run on the GPU machine by
// scripts/device-gemv-sweep.sh:
//   nvcc -O3 -std=c++17 -arch=sm_90a -I. bench/sweeps/gemv_mma_sweep.cu -o /tmp/sweep
// Timing as pmpd-bench --mode kernel: launches back to back, weights rotated over >= 4 x L2,
// median of 5 x 50 launches (CUDA events); bandwidth = a device-to-device copy in the same run.
// Results: kernels/NOTES.md.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "kernels/anyprec_gemv_lowbit_kernel.cuh"
#include "kernels/anyprec_gemv_mma_kernel.cuh"

using namespace pmpd::kernels::anyprec_detail;

namespace {

double TimeUs(const std::function<void(int)>& fn, int iters) {
  cudaEvent_t a, b;
  PMPD_CUDA_CHECK(cudaEventCreate(&a));
  PMPD_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 20; ++i) fn(i);
  PMPD_CUDA_CHECK(cudaDeviceSynchronize());
  std::vector<double> t;
  for (int r = 0; r < 5; ++r) {
    PMPD_CUDA_CHECK(cudaEventRecord(a));
    for (int i = 0; i < iters; ++i) fn(r * iters + i);
    PMPD_CUDA_CHECK(cudaEventRecord(b));
    PMPD_CUDA_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    PMPD_CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(1000.0 * ms / iters);
  }
  std::sort(t.begin(), t.end());
  return t[2];
}

using Launch = std::function<void(const float*, const uint32_t*, const __half*, int, int, float*)>;

struct Config {
  const char* name;
  Launch launch;
};

void* g_workspace = nullptr;  // MmaWorkspaceBytes(8, kMaxK)
constexpr int kMaxK = 16384;
const char* g_only = nullptr;  // run only the configurations whose name contains this

template <int BITS, int M>
std::vector<Config> Configs() {
  return {{"v7", [](const float* x, const uint32_t* q, const __half* l, int N, int K,
                    float* y) { LaunchLowBitGemv<BITS, M>(x, q, l, N, K, true, y, false, 0); }},
          {"mma", [](const float* x, const uint32_t* q, const __half* l, int N, int K, float* y) {
             LaunchMmaGemv<BITS, M>(x, q, l, N, K, y, g_workspace, false, 0);
           }}};
}

template <int BITS, int M>
void Sweep(int N, int K, double bw, size_t rotate_bytes) {
  const int kw = (K + 31) / 32;
  const size_t qwords = static_cast<size_t>(BITS) * N * kw;
  const int copies = static_cast<int>(std::max<size_t>(2, rotate_bytes / (qwords * 4) + 1));
  std::mt19937 rng(BITS * 1000 + N + M);
  std::vector<uint32_t> hq(qwords * copies);
  for (auto& w : hq) w = rng();
  std::vector<__half> hl(static_cast<size_t>(N) << BITS);
  std::normal_distribution<float> g(0.f, 0.05f);
  for (auto& v : hl) v = __float2half(g(rng));
  std::vector<float> hx(static_cast<size_t>(M) * K);
  for (auto& v : hx) v = g(rng) * 20;
  hx[0] = 3000.f;  // an outlier, as LLM activations have
  uint32_t* q;
  __half* l;
  float *x, *y;
  PMPD_CUDA_CHECK(cudaMalloc(&q, hq.size() * 4));
  PMPD_CUDA_CHECK(cudaMalloc(&l, hl.size() * 2));
  PMPD_CUDA_CHECK(cudaMalloc(&x, hx.size() * 4));
  PMPD_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(M) * N * 4));
  PMPD_CUDA_CHECK(cudaMemcpy(q, hq.data(), hq.size() * 4, cudaMemcpyHostToDevice));
  PMPD_CUDA_CHECK(cudaMemcpy(l, hl.data(), hl.size() * 2, cudaMemcpyHostToDevice));
  PMPD_CUDA_CHECK(cudaMemcpy(x, hx.data(), hx.size() * 4, cudaMemcpyHostToDevice));
  const double bytes =
      static_cast<double>(BITS) * N * kw * 4 + 2.0 * N * (1 << BITS) + 4.0 * M * (K + N);
  std::vector<float> ref(static_cast<size_t>(M) * N), got(ref.size());
  auto configs = Configs<BITS, M>();
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    const auto& c = configs[ci];
    if (g_only && ci > 0 && !std::strstr(c.name, g_only)) continue;
    PMPD_CUDA_CHECK(cudaMemset(y, 0xff, got.size() * 4));
    c.launch(x, q, l, N, K, y);
    PMPD_CUDA_CHECK(cudaDeviceSynchronize());
    PMPD_CUDA_CHECK(cudaMemcpy(got.data(), y, got.size() * 4, cudaMemcpyDeviceToHost));
    if (ci == 0) ref = got;
    double max_err = 0;
    for (size_t n = 0; n < got.size(); ++n)
      max_err = std::max(max_err, std::fabs(double(got[n]) - ref[n]) / (1 + std::fabs(ref[n])));
    const double us =
        TimeUs([&](int i) { c.launch(x, q + (i % copies) * qwords, l, N, K, y); }, 50);
    const double pct = 100 * bytes / (us * 1e-6) / 1e9 / bw;
    std::printf("| %dx%d | %d | %d | %s | %.1f | %.1f | %.1e |%s\n", N, K, M, BITS, c.name, us, pct,
                max_err, max_err > 1e-4 || std::isnan(max_err) ? " MISMATCH" : "");
  }
  cudaFree(q);
  cudaFree(l);
  cudaFree(x);
  cudaFree(y);
}

template <int BITS>
void SweepTokens(int M, int N, int K, double bw, size_t rotate) {
  if (M == 1) Sweep<BITS, 1>(N, K, bw, rotate);
  if (M == 2) Sweep<BITS, 2>(N, K, bw, rotate);
  if (M == 4) Sweep<BITS, 4>(N, K, bw, rotate);
  if (M == 8) Sweep<BITS, 8>(N, K, bw, rotate);
}

void SweepBits(int bits, int M, int N, int K, double bw, size_t rotate) {
  if (bits == 2) SweepTokens<2>(M, N, K, bw, rotate);
  if (bits == 3) SweepTokens<3>(M, N, K, bw, rotate);
  if (bits == 4) SweepTokens<4>(M, N, K, bw, rotate);
}

}  // namespace

// Usage: gemv_mma_sweep [BITS N K [TOKENS [CONFIG]]]: one bit width and shape, token counts 1, 2,
// 4, 8 or the one given (0: all), only the configurations whose name contains CONFIG (v7 always
// first); no arguments: every shape, bit width 2..4 and token count.
int main(int argc, char** argv) {
  cudaDeviceProp prop;
  PMPD_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  PMPD_CUDA_CHECK(cudaMalloc(&g_workspace, MmaWorkspaceBytes(8, kMaxK)));
  const size_t gb = size_t{1} << 30;
  void *src, *dst;
  PMPD_CUDA_CHECK(cudaMalloc(&src, gb));
  PMPD_CUDA_CHECK(cudaMalloc(&dst, gb));
  const double copy_us = TimeUs(
      [&](int) { PMPD_CUDA_CHECK(cudaMemcpyAsync(dst, src, gb, cudaMemcpyDeviceToDevice)); }, 5);
  cudaFree(src);
  cudaFree(dst);
  const double bw = 2.0 * gb / (copy_us * 1e-6) / 1e9;
  const size_t rotate = std::max<size_t>(4 * static_cast<size_t>(prop.l2CacheSize), 200 << 20);
  std::printf("device %s, copy bandwidth %.0f GB/s, rotate >= %zu MB\n", prop.name, bw,
              rotate >> 20);
  std::printf(
      "| N x K | tokens | bits | kernel | us | %% of BW | max rel. diff vs v7 |\n"
      "|---|---|---|---|---|---|---|\n");
  const int all_tokens[] = {1, 2, 4, 8};
  if (argc >= 4) {
    const int bits = std::atoi(argv[1]), N = std::atoi(argv[2]), K = std::atoi(argv[3]);
    const int only_m = argc >= 5 ? std::atoi(argv[4]) : 0;
    if (argc >= 6) g_only = argv[5];
    if (K > kMaxK) return 1;
    for (int M : all_tokens) {
      if (only_m == 0 || only_m == M) SweepBits(bits, M, N, K, bw, rotate);
    }
    return 0;
  }
  const int shapes[][2] = {
      {4096, 4096}, {12288, 4096}, {22016, 4096}, {11008, 4096}, {4096, 11008}};
  for (auto& s : shapes) {
    for (int bits = 2; bits <= 4; ++bits) {
      for (int M : all_tokens) SweepBits(bits, M, s[0], s[1], bw, rotate);
    }
  }
  return 0;
}
