// Dense fp16 GEMV (contract in dense_f16_gemv.cuh).
#include <cfloat>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/dense_f16_gemv.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace {

// Dense fp16 GEMV: a block of 4 warps owns 4 R rows, warp w rows R w .. R w + R - 1; lane t reads
// 16 bytes (8 weights) of each row per step at k8 = t, t + 32, ... (coalesced 512-byte rows) and
// the matching 8 activations of every token (two float4, shared by the R rows). Unrolled so each
// lane keeps several 16-byte loads in flight. Tail columns (K % 8, or unaligned rows) take the
// scalar loop.
constexpr int kDenseWarps = 4;
template <int M, int R>
__global__ void __launch_bounds__(kDenseWarps * 32)
    DenseF16GemvKernel(const float* __restrict__ x, const __half* __restrict__ w, int N, int K,
                       bool vec, float* __restrict__ y) {
  GridDependencyWait();  // x is the previous kernel's output
  TriggerDependents();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kDenseWarps + warp) * R;
  if (n0 >= N) return;
  const int rows = min(R, N - n0);
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  }
  const int k8 = vec ? K / 8 : 0;
#pragma unroll 4
  for (int i = lane; i < k8; i += 32) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      wv[r] = __ldg(
          reinterpret_cast<const uint4*>(w + static_cast<size_t>(n0 + min(r, rows - 1)) * K) + i);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(m) * K) + 2 * i;
      const float4 a = __ldg(xp), b = __ldg(xp + 1);
      const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const __half2* h2 = reinterpret_cast<const __half2*>(&wv[r]);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 f = __half22float2(h2[j]);
          acc[r][m] = fmaf(f.x, xv[2 * j], acc[r][m]);
          acc[r][m] = fmaf(f.y, xv[2 * j + 1], acc[r][m]);
        }
      }
    }
  }
  for (int k = 8 * k8 + lane; k < K; k += 32) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float wk = __half2float(w[static_cast<size_t>(n0 + min(r, rows - 1)) * K + k]);
#pragma unroll
      for (int m = 0; m < M; ++m)
        acc[r][m] = fmaf(wk, x[static_cast<size_t>(m) * K + k], acc[r][m]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = WarpSum(acc[r][m]);
      if (lane == 0 && r < rows) y[static_cast<size_t>(m) * N + n0 + r] = v;
    }
  }
}

template <int M>
void LaunchDenseF16Gemv(const float* x, const __half* w, int N, int K, float* y, bool overlap,
                        cudaStream_t stream) {
  constexpr int R = M <= 2 ? 4 : (M <= 4 ? 2 : 1);
  const bool vec = K % 8 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(x) % 16 == 0;
  LaunchOverlapped(DenseF16GemvKernel<M, R>, dim3((N + kDenseWarps * R - 1) / (kDenseWarps * R)),
                   dim3(kDenseWarps * 32), stream, overlap, x, w, N, K, vec, y);
}

}  // namespace

void DenseF16Gemv(const float* x, int M, const __half* w, int N, int K, float* y,
                  cudaStream_t stream, bool overlap_previous) {
  PMPD_CHECK(M >= 1 && M <= 8 && N >= 0 && K >= 0, "DenseF16Gemv: 1 <= M <= 8");
  if (N == 0) return;
  switch (M) {
    case 1:
      LaunchDenseF16Gemv<1>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 2:
      LaunchDenseF16Gemv<2>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 3:
      LaunchDenseF16Gemv<3>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 4:
      LaunchDenseF16Gemv<4>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 5:
      LaunchDenseF16Gemv<5>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 6:
      LaunchDenseF16Gemv<6>(x, w, N, K, y, overlap_previous, stream);
      break;
    case 7:
      LaunchDenseF16Gemv<7>(x, w, N, K, y, overlap_previous, stream);
      break;
    default:
      LaunchDenseF16Gemv<8>(x, w, N, K, y, overlap_previous, stream);
      break;
  }
}

}  // namespace pmpd::kernels
