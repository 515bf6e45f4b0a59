// pmpd-bench --mode kernel: any-precision GEMV time, GB/s and fraction of the measured HBM
// bandwidth per shape and precision, next to cuBLAS fp16 on the same shape. Weights are rotated
// through copies totalling > 2x the L2 so every run reads from memory, not cache.
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "kernels/anyprec_gemv.cuh"
#include "kernels/cuda_check.cuh"

ABSL_FLAG(std::string, mode, "kernel", "kernel: per-matrix GEMV benchmark (end-to-end mode comes with the CUDA engine).");
ABSL_FLAG(std::string, shapes, "4096x4096,12288x4096,22016x4096,11008x4096,4096x11008",
          "Comma-separated NxK shapes (N = out features).");
ABSL_FLAG(std::string, bits, "2,3,4,5,6,7,8", "Precisions to time.");
ABSL_FLAG(int, tokens, 1, "Tokens per GEMV (1..8).");
ABSL_FLAG(int, iters, 50, "Timed launches per repeat (the median of 5 repeats is reported).");
ABSL_FLAG(std::string, json_out, "", "Also write the rows as JSON to this file.");

namespace {

#define CUBLAS_CHECK(expr)                                                            \
  do {                                                                                \
    cublasStatus_t s_ = (expr);                                                       \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                                \
      std::fprintf(stderr, "%s:%d: cuBLAS error %d\n", __FILE__, __LINE__, int(s_)); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

// Median over 5 repeats of the mean time (us) of `iters` launches of fn(i).
double TimeUs(const std::function<void(int)>& fn, int iters) {
  cudaEvent_t a, b;
  PMPD_CUDA_CHECK(cudaEventCreate(&a));
  PMPD_CUDA_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 20; ++i) fn(i);  // warm-up (cuBLAS picks its kernel on the first calls)
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
  PMPD_CUDA_CHECK(cudaEventDestroy(a));
  PMPD_CUDA_CHECK(cudaEventDestroy(b));
  return t[2];
}

// Device-to-device copy bandwidth (bytes read + written per second), 1 GiB buffers.
double MeasureBandwidthGBs() {
  const size_t bytes = size_t{1} << 30;
  void *src, *dst;
  PMPD_CUDA_CHECK(cudaMalloc(&src, bytes));
  PMPD_CUDA_CHECK(cudaMalloc(&dst, bytes));
  PMPD_CUDA_CHECK(cudaMemset(src, 1, bytes));
  const double us = TimeUs([&](int) { PMPD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 5);
  cudaFree(src);
  cudaFree(dst);
  return 2.0 * bytes / (us * 1e-6) / 1e9;
}

void FillRandom(void* dev, size_t bytes, uint32_t seed, bool halfs) {
  std::vector<uint16_t> h(bytes / 2);
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, 0.02f);
  for (auto& v : h) {
    if (halfs) {
      const __half x = __float2half(g(rng));
      std::memcpy(&v, &x, 2);
    } else {
      v = static_cast<uint16_t>(rng());
    }
  }
  PMPD_CUDA_CHECK(cudaMemcpy(dev, h.data(), bytes, cudaMemcpyHostToDevice));
}

}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage("GPU benchmarks. --mode kernel: any-precision GEMV vs cuBLAS fp16, with bandwidth fractions.");
  pmpd::cli::ParseFlags(argc, argv);
  if (absl::GetFlag(FLAGS_mode) != "kernel") {
    return pmpd::cli::Fail("pmpd-bench", absl::InvalidArgumentError("only --mode kernel exists so far"));
  }
  int dev = 0;
  cudaDeviceProp prop;
  PMPD_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  const double bw = MeasureBandwidthGBs();
  const size_t rotate_bytes = std::max<size_t>(4 * static_cast<size_t>(prop.l2CacheSize), size_t{200} << 20);
  std::printf("device %s, L2 %d MB, measured copy bandwidth %.0f GB/s; weights rotated over >= %zu MB\n", prop.name,
              prop.l2CacheSize >> 20, bw, rotate_bytes >> 20);
  const int M = absl::GetFlag(FLAGS_tokens), iters = absl::GetFlag(FLAGS_iters);
  std::vector<int> bits;
  for (auto b : absl::StrSplit(absl::GetFlag(FLAGS_bits), ',')) {
    int v;
    if (absl::SimpleAtoi(b, &v)) bits.push_back(v);
  }
  cublasHandle_t handle;
  CUBLAS_CHECK(cublasCreate(&handle));
  nlohmann::json rows = nlohmann::json::array();
  std::printf("| N x K | tokens | bits | us | GB/s | %% of BW | cuBLAS fp16 us | cuBLAS %% of BW | speedup |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|\n");
  for (auto shape : absl::StrSplit(absl::GetFlag(FLAGS_shapes), ',')) {
    std::vector<std::string> nk = absl::StrSplit(shape, 'x');
    int N = 0, K = 0;
    if (nk.size() != 2 || !absl::SimpleAtoi(nk[0], &N) || !absl::SimpleAtoi(nk[1], &K)) continue;
    const int kw = (K + 31) / 32;
    // cuBLAS fp16 baseline, rotated copies.
    const size_t wbytes = static_cast<size_t>(N) * K * 2;
    const int wcopies = static_cast<int>(std::max<size_t>(2, rotate_bytes / wbytes + 1));
    __half *W, *xh, *yh;
    PMPD_CUDA_CHECK(cudaMalloc(&W, wbytes * wcopies));
    FillRandom(W, wbytes * wcopies, 1, true);
    PMPD_CUDA_CHECK(cudaMalloc(&xh, static_cast<size_t>(K) * M * 2));
    FillRandom(xh, static_cast<size_t>(K) * M * 2, 2, true);
    PMPD_CUDA_CHECK(cudaMalloc(&yh, static_cast<size_t>(N) * M * 2));
    const float one = 1.f, zero = 0.f;
    const double cublas_us = TimeUs([&](int i) {
      CUBLAS_CHECK(cublasGemmEx(handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W + (i % wcopies) * (wbytes / 2),
                                CUDA_R_16F, K, xh, CUDA_R_16F, K, &zero, yh, CUDA_R_16F, N, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT));
    }, iters);
    const double cublas_bytes = wbytes + 2.0 * M * (K + N);
    cudaFree(W);
    // Any-precision: planes for P = 8 (the parent) and LUTs of every precision.
    const size_t qbytes = static_cast<size_t>(8) * N * kw * 4;
    const int qcopies = static_cast<int>(std::max<size_t>(2, rotate_bytes / qbytes + 1));
    uint32_t* Q;
    __half* L;
    float *x, *y;
    PMPD_CUDA_CHECK(cudaMalloc(&Q, qbytes * qcopies));
    FillRandom(Q, qbytes * qcopies, 3, false);
    PMPD_CUDA_CHECK(cudaMalloc(&L, static_cast<size_t>(N) * 256 * 2));
    FillRandom(L, static_cast<size_t>(N) * 256 * 2, 4, true);
    PMPD_CUDA_CHECK(cudaMalloc(&x, static_cast<size_t>(K) * M * 4));
    FillRandom(x, static_cast<size_t>(K) * M * 4, 5, true);
    PMPD_CUDA_CHECK(cudaMalloc(&y, static_cast<size_t>(N) * M * 4));
    for (int p : bits) {
      const double us = TimeUs([&](int i) {
        pmpd::kernels::AnyprecGemv(x, M, Q + (i % qcopies) * (qbytes / 4), L, N, K, 8, p, y, nullptr);
      }, iters);
      // Bytes the kernel must move: p of the 8 planes, the p-bit LUTs, x and y.
      const double bytes = static_cast<double>(p) * N * kw * 4 + 2.0 * N * (1 << p) +
                           4.0 * M * (K + N);
      const double gbs = bytes / (us * 1e-6) / 1e9;
      std::printf("| %dx%d | %d | %d | %.1f | %.0f | %.1f | %.1f | %.1f | %.2fx |\n", N, K, M, p, us, gbs,
                  100 * gbs / bw, cublas_us, 100 * cublas_bytes / (cublas_us * 1e-6) / 1e9 / bw, cublas_us / us);
      rows.push_back({{"n", N}, {"k", K}, {"tokens", M}, {"bits", p}, {"us", us}, {"gbs", gbs},
                      {"bw_fraction", gbs / bw}, {"cublas_fp16_us", cublas_us}, {"speedup", cublas_us / us}});
    }
    cudaFree(Q);
    cudaFree(L);
    cudaFree(x);
    cudaFree(y);
    cudaFree(xh);
    cudaFree(yh);
  }
  cublasDestroy(handle);
  if (!absl::GetFlag(FLAGS_json_out).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json_out)) << nlohmann::json{{"device", prop.name}, {"bandwidth_gbs", bw},
                                                                   {"rows", rows}}.dump(1);
  }
  return 0;
}
