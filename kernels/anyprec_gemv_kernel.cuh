// The any-precision GEMV kernel template, included by one translation unit per bit width
// (anyprec_gemv_b<p>.cu) so instantiations compile in parallel; anyprec_gemv.cu dispatches.
//
// Work split: one warp per R consecutive output rows (v6: for N >= 8192, R = 4 at 1-2 tokens and 2
// at 3-4, so each activation run loaded into registers serves R rows; otherwise R = 1, which keeps
// enough warps in flight for N = 4096); lane t of the warp owns word t of every 1024-column chunk
// (T words in the last, partial chunk), so each plane is read as one coalesced 128-byte line per
// chunk. From its p words (planes 0..p-1 = MSB first) a lane rebuilds the p-bit codes of its 32
// columns, 8 at a time (one byte of every plane per run):
//
//   word bits 31..24 -> run s=0: columns 8T*0 + 8t .. +7      (bit 31 - 8s - r is column 8Ts + 8t +
//   r) word bits 23..16 -> run s=1: columns 8T*1 + 8t .. +7
//   ...
//
// looks each code up in the row's LUT (fp32 copy in shared memory, 2^p entries per warp) and
// accumulates x * w in fp32 for every token; a warp shuffle reduction gives y[m, n].
#pragma once

#include <cuda_fp16.h>

#include "kernels/anyprec_gemv.cuh"
#include "kernels/anyprec_gemv_lowbit_kernel.cuh"
#include "kernels/anyprec_gemv_mma_kernel.cuh"
#include "kernels/cuda_check.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace anyprec_detail {

constexpr int kWarpsPerBlock = 8;

template <int BITS, int M, int R>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    AnyprecGemvKernel(const float* __restrict__ x, const uint32_t* __restrict__ qweight,
                      const __half* __restrict__ lut, int N, int K, bool x_vec,
                      float* __restrict__ y) {
  __shared__ float lut_s[kWarpsPerBlock][R][1 << BITS];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kWarpsPerBlock + warp) * R;
  if (n0 >= N) return;              // whole warp leaves together
  const int rows = min(R, N - n0);  // the last warp may hold fewer rows: it recomputes its last one
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const __half* lut_row = lut + (static_cast<size_t>(n0 + min(r, rows - 1)) << BITS);
    for (int c = lane; c < (1 << BITS); c += 32) lut_s[warp][r][c] = __half2float(lut_row[c]);
  }
  __syncwarp();

  const int kw = (K + 31) / 32;
  const int kpad = kw * 32;
  const size_t plane_stride = static_cast<size_t>(N) * kw;
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  }

  for (int chunk = 0; chunk * 1024 < kpad; ++chunk) {
    const int T = (chunk + 1) * 1024 <= kpad ? 32 : (kpad % 1024) / 32;
    if (lane >= T) continue;
    uint32_t words[R][BITS];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint32_t* row =
          qweight + static_cast<size_t>(n0 + min(r, rows - 1)) * kw + chunk * 32 + lane;
#pragma unroll
      for (int b = 0; b < BITS; ++b) words[r][b] = __ldg(row + b * plane_stride);
    }
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      // The 8 activations of this run for every token: two 16-byte loads each when aligned.
      const int col0 = chunk * 1024 + 8 * T * s + 8 * lane;
      float xv[M][8];
      LoadActivationRun<M>(x, K, col0, x_vec, xv);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        // Rebuild the run's 8 codes at once: per plane, take its byte and spread each nibble so
        // every bit lands in a byte of its own ((n * 0x00204081) & 0x01010101: byte k = bit k of
        // n), shifted to the plane's place in the code. hi4 bytes 3..0 hold columns 0..3, lo4
        // bytes 3..0 columns 4..7. About 0.75 instructions per plane per column instead of 3.
        uint32_t hi4 = 0, lo4 = 0;
#pragma unroll
        for (int b = 0; b < BITS; ++b) {
          const uint32_t byte = (words[r][b] >> (24 - 8 * s)) & 0xffu;
          const int sh = BITS - 1 - b;
          hi4 |= (((byte >> 4) * 0x00204081u) & 0x01010101u) << sh;
          lo4 |= (((byte & 15u) * 0x00204081u) & 0x01010101u) << sh;
        }
        const float* lut_w = lut_s[warp][r];
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const uint32_t code =
              c < 4 ? (hi4 >> (8 * (3 - c))) & 0xffu : (lo4 >> (8 * (7 - c))) & 0xffu;
          const float w =
              lut_w[code];  // padding columns (col >= K) have x = 0, so they add nothing
#pragma unroll
          for (int m = 0; m < M; ++m) acc[r][m] += w * xv[m][c];
        }
      }
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

__device__ __forceinline__ void StoreWeight(__half v, __half* p) { *p = v; }
__device__ __forceinline__ void StoreWeight(__half v, float* p) { *p = __half2float(v); }

template <int BITS, typename Out>
__global__ void AnyprecDequantKernel(const uint32_t* __restrict__ qweight,
                                     const __half* __restrict__ lut, int N, int K,
                                     Out* __restrict__ w) {
  // One thread per (row, word): rebuilds 32 codes and writes their LUT values.
  const int kw = (K + 31) / 32, kpad = kw * 32;
  const size_t idx = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= static_cast<size_t>(N) * kw) return;
  const int n = static_cast<int>(idx / kw), word = static_cast<int>(idx % kw);
  const int chunk = word / 32, t = word % 32;
  const int T = (chunk + 1) * 1024 <= kpad ? 32 : (kpad % 1024) / 32;
  const size_t plane_stride = static_cast<size_t>(N) * kw;
  uint32_t words[BITS];
#pragma unroll
  for (int b = 0; b < BITS; ++b)
    words[b] = qweight[b * plane_stride + static_cast<size_t>(n) * kw + word];
  const __half* lut_row = lut + (static_cast<size_t>(n) << BITS);
#pragma unroll
  for (int s = 0; s < 4; ++s) {
#pragma unroll
    for (int r = 0; r < 8; ++r) {
      const int col = chunk * 1024 + 8 * T * s + 8 * t + r;
      int code = 0;
#pragma unroll
      for (int b = 0; b < BITS; ++b) code = (code << 1) | ((words[b] >> (31 - 8 * s - r)) & 1u);
      if (col < K) StoreWeight(lut_row[code], w + static_cast<size_t>(n) * K + col);
    }
  }
}

// Rows per warp: R rows share each activation run loaded into registers, but leave N / (8 R)
// blocks; measured on H100 (kernels/NOTES.md, v6): R = 4 wins from N = 11008 up (1.2-1.25x at 2
// bits) and loses at N = 4096 (under 2 blocks per SM), so the launch picks it from N. p <= 4 goes
// to the low-bit kernel (anyprec_gemv_lowbit_kernel.cuh) or the tensor-core kernel
// (anyprec_gemv_mma_kernel.cuh) unless `path` asks for this one.
template <int BITS, int M>
void LaunchGemv(const float* x, const uint32_t* qweight, const __half* lut, int N, int K, int P,
                float* y, int path, bool overlap, void* workspace, cudaStream_t stream) {
  // 16-byte activation loads need a 16-byte aligned x and rows of a multiple of 4 floats.
  const bool x_vec = reinterpret_cast<uintptr_t>(x) % 16 == 0 && K % 4 == 0;
  if constexpr (BITS <= 4) {
    if (path == static_cast<int>(AnyprecGemvPath::kTensorCore)) {
      return LaunchMmaGemv<BITS, M>(x, qweight, lut, N, K, y, workspace, overlap, stream);
    }
    if (path != static_cast<int>(AnyprecGemvPath::kGeneric))
      return LaunchLowBitGemv<BITS, M>(x, qweight, lut, N, K, x_vec, y, overlap, stream);
  }
  constexpr int kWideR = M <= 2 ? 4 : (M <= 4 ? 2 : 1);
  const bool wide = kWideR > 1 && N >= 8192;
  const int R = wide ? kWideR : 1;
  const int blocks = (N + kWarpsPerBlock * R - 1) / (kWarpsPerBlock * R);
  if (wide) {
    AnyprecGemvKernel<BITS, M, kWideR>
        <<<blocks, kWarpsPerBlock * 32, 0, stream>>>(x, qweight, lut, N, K, x_vec, y);
  } else {
    AnyprecGemvKernel<BITS, M, 1>
        <<<blocks, kWarpsPerBlock * 32, 0, stream>>>(x, qweight, lut, N, K, x_vec, y);
  }
}

// Per bit width: GEMV for every token count and the dequantize kernel.
template <int BITS>
void GemvForBits(const float* x, int M, const uint32_t* qweight, const __half* lut, int N, int K,
                 int P, float* y, int path, bool overlap, void* workspace, cudaStream_t stream) {
  switch (M) {
    case 1:
      LaunchGemv<BITS, 1>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 2:
      LaunchGemv<BITS, 2>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 3:
      LaunchGemv<BITS, 3>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 4:
      LaunchGemv<BITS, 4>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 5:
      LaunchGemv<BITS, 5>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 6:
      LaunchGemv<BITS, 6>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 7:
      LaunchGemv<BITS, 7>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
    case 8:
      LaunchGemv<BITS, 8>(x, qweight, lut, N, K, P, y, path, overlap, workspace, stream);
      break;
  }
}

template <int BITS, typename T>
void DequantForBits(const uint32_t* qweight, const __half* lut, int N, int K, T* w,
                    cudaStream_t stream) {
  const size_t threads = static_cast<size_t>(N) * ((K + 31) / 32);
  const int block = 256;
  AnyprecDequantKernel<BITS, T>
      <<<static_cast<unsigned>((threads + block - 1) / block), block, 0, stream>>>(qweight, lut, N,
                                                                                   K, w);
}

// ..., y, path (AnyprecGemvPath as int, kAuto resolved), overlap, workspace, stream.
using GemvFn = void (*)(const float*, int, const uint32_t*, const __half*, int, int, int, float*,
                        int, bool, void*, cudaStream_t);
using DequantFn = void (*)(const uint32_t*, const __half*, int, int, __half*, cudaStream_t);
using DequantF32Fn = void (*)(const uint32_t*, const __half*, int, int, float*, cudaStream_t);

// Defined in anyprec_gemv_b<p>.cu, one specialization per bit width.
template <int BITS>
GemvFn GetGemv();
template <int BITS>
DequantFn GetDequant();
template <int BITS>
DequantF32Fn GetDequantF32();
#define PMPD_ANYPREC_DECLARE(B) \
  template <>                   \
  GemvFn GetGemv<B>();          \
  template <>                   \
  DequantFn GetDequant<B>();    \
  template <>                   \
  DequantF32Fn GetDequantF32<B>();
PMPD_ANYPREC_DECLARE(2)
PMPD_ANYPREC_DECLARE(3)
PMPD_ANYPREC_DECLARE(4)
PMPD_ANYPREC_DECLARE(5)
PMPD_ANYPREC_DECLARE(6)
PMPD_ANYPREC_DECLARE(7)
PMPD_ANYPREC_DECLARE(8)
#undef PMPD_ANYPREC_DECLARE

// The body of anyprec_gemv_b<B>.cu: defines the specializations for bit width B.
#define PMPD_ANYPREC_DEFINE(B)              \
  namespace pmpd::kernels::anyprec_detail { \
  template <>                               \
  GemvFn GetGemv<B>() {                     \
    return &GemvForBits<B>;                 \
  }                                         \
  template <>                               \
  DequantFn GetDequant<B>() {               \
    return &DequantForBits<B, __half>;      \
  }                                         \
  template <>                               \
  DequantF32Fn GetDequantF32<B>() {         \
    return &DequantForBits<B, float>;       \
  }                                         \
  }

}  // namespace anyprec_detail
}  // namespace pmpd::kernels
