// The any-precision GEMV for p = 2..4 bits (v7), included by anyprec_gemv_b{2,3,4}.cu.
//
// Why a second kernel: the generic one (anyprec_gemv_kernel.cuh) spends ~12 lane instructions per
// weight rebuilding codes byte by byte and looking each up (ncu, kernels/NOTES.md); at 2 bits the
// memory floor allows ~2.4. This one cuts the per-weight work to a shift, a LOP3, a shared load and
// FFMAs by merging the planes into *code words* once per 32 columns, with every code at a fixed
// field the lookup address is cut straight out of:
//
//   p = 3, 4: t_j (j = 0..3) holds in nibble k the p-bit code of the column at word bit 4k + j
//             (plane b's bit moved to nibble bit p-1-b: one shift and one LOP3 per plane). The
//             address is (t_j >> (4k - 2)) & ((2^p - 1) << 2) | table base: fp32 LUT of 2^p
//             entries.
//   p = 2:    a *pair* table: 16 float2 entries (L[i >> 2], L[i & 3]) per row, so one 8-byte lookup
//             dequantizes two columns. tA = (a & 0xAAAAAAAA) | ((b >> 1) & 0x55555555) holds in
//             nibble k the index (code(bit 4k+3) << 2) | code(bit 4k+1), tB = ((a << 1) &
//             0xAAAAAAAA) | (b & 0x55555555) that of bits 4k+2 and 4k (a = MSB plane, b = LSB
//             plane): 4 instructions merge 32 columns, then ~2.5 instructions per weight.
// Both tables are broadcast-friendly: at most 16 distinct 4- or 8-byte words, so no bank conflicts.
//
// Work split: a block of kWarps warps owns R consecutive rows; warp w takes the 1024-column chunks
// w, w + kWarps, ... of K (split-K inside the block, so N = 4096 still gives 512 blocks) and its
// lane t the word t of each chunk (the layout of kernels/ref/anyprec_ref.h). An activation run
// loaded into registers serves all R rows, which keeps the L1 traffic for x at 4M/R bytes per
// weight. Partial sums: warp shuffle, then shared memory across the warps.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace anyprec_detail {

constexpr int kLowBitWarps = 4;

// The 8 activations of one run (columns col0 .. col0 + 7) for every token: two 16-byte loads per
// token when aligned (`x_vec`) and inside K; otherwise scalar loads, with padding columns
// (col >= K) read as 0 so their codes add nothing.
template <int M>
__device__ __forceinline__ void LoadActivationRun(const float* __restrict__ x, int K, int col0,
                                                  bool x_vec, float (&xv)[M][8]) {
  if (x_vec && col0 + 8 <= K) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4* p4 = reinterpret_cast<const float4*>(x + static_cast<size_t>(m) * K + col0);
      const float4 a = __ldg(p4), b = __ldg(p4 + 1);
      xv[m][0] = a.x, xv[m][1] = a.y, xv[m][2] = a.z, xv[m][3] = a.w;
      xv[m][4] = b.x, xv[m][5] = b.y, xv[m][6] = b.z, xv[m][7] = b.w;
    }
  } else {
#pragma unroll
    for (int m = 0; m < M; ++m) {
#pragma unroll
      for (int c = 0; c < 8; ++c)
        xv[m][c] = col0 + c < K ? __ldg(x + static_cast<size_t>(m) * K + col0 + c) : 0.f;
    }
  }
}

__device__ __forceinline__ float LoadSharedF32(uint32_t addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr));
  return v;
}

__device__ __forceinline__ float2 LoadSharedF32x2(uint32_t addr) {
  float2 v;
  asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];" : "=f"(v.x), "=f"(v.y) : "r"(addr));
  return v;
}

// Column (0..7) within its 8-column run of the word bit `bit` (layout: bit = 31 - 8 s - r).
__host__ __device__ constexpr int RunColumn(int bit) { return (31 - bit) % 8; }

// Sum over the 32 lanes of each of V values (V a power of two <= 32): a reduce-scatter (V - 1
// shuffles while halving the values, then 5 - log2 V for the rest) instead of 5 V. Afterwards value
// i = lane >> (5 - log2 V) is complete in v[0] of the lanes with lane % (32 / V) == 0.
template <int V>
__device__ __forceinline__ float WarpReduceScatter(float (&v)[V], int lane) {
  static_assert(V >= 1 && V <= 32 && (V & (V - 1)) == 0, "V must be a power of two <= 32");
  int width = 16;
#pragma unroll
  for (int cur = V; cur > 1; cur /= 2, width /= 2) {
    const bool upper = (lane & width) != 0;
#pragma unroll
    for (int i = 0; i < cur / 2; ++i) {
      const float keep = upper ? v[i + cur / 2] : v[i];
      const float send = upper ? v[i] : v[i + cur / 2];
      v[i] = keep + __shfl_xor_sync(0xffffffffu, send, width);
    }
  }
#pragma unroll
  for (; width > 0; width /= 2) v[0] += __shfl_xor_sync(0xffffffffu, v[0], width);
  return v[0];
}

__host__ __device__ constexpr int Log2(int v) { return v <= 1 ? 0 : 1 + Log2(v / 2); }

template <int BITS, int M, int R>
__global__ void __launch_bounds__(kLowBitWarps * 32)
    AnyprecGemvLowBitKernel(const float* __restrict__ x, const uint32_t* __restrict__ qweight,
                            const __half* __restrict__ lut, int N, int K, bool x_vec,
                            float* __restrict__ y) {
  static_assert(BITS >= 2 && BITS <= 4, "the low-bit kernel serves p = 2..4");
  constexpr bool kPair = BITS == 2;
  constexpr int kTableFloats = kPair ? 32 : (1 << BITS);  // per row
  constexpr int kTableBytes = kTableFloats * 4;           // a power of two: rows are aligned to it
  constexpr int kValues = R * M;
  constexpr bool kScatter = (kValues & (kValues - 1)) == 0 && kValues <= 32;
  __shared__ __align__(128) float table[R][kTableFloats];
  __shared__ float partial[kLowBitWarps][kValues];

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = blockIdx.x * R;
  const int rows =
      min(R, N - n0);  // the last block may hold fewer rows: it recomputes its last one
  const int kw = (K + 31) / 32;
  const int kpad = kw * 32;
  const size_t plane_stride = static_cast<size_t>(N) * kw;
  auto words_in = [&](int chunk) { return (chunk + 1) * 1024 <= kpad ? 32 : (kpad % 1024) / 32; };
  uint32_t w[R][BITS];  // the planes of the next chunk, loaded one chunk ahead
  auto load_words = [&](int chunk) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint32_t* row =
          qweight + static_cast<size_t>(n0 + min(r, rows - 1)) * kw + chunk * 32 + lane;
#pragma unroll
      for (int b = 0; b < BITS; ++b) w[r][b] = __ldg(row + b * plane_stride);
    }
  };
  // Prologue, before the wait on the previous kernel: the first chunk's planes and the tables
  // (weights and LUTs never depend on it), so their memory latency overlaps its tail.
  int chunk = warp;
  if (chunk * 1024 < kpad && lane < words_in(chunk)) load_words(chunk);
  constexpr int kEntries = kPair ? 16 : (1 << BITS);
  for (int i = threadIdx.x; i < R * kEntries; i += blockDim.x) {
    const int r = i / kEntries, e = i % kEntries;
    const __half* lut_row = lut + (static_cast<size_t>(n0 + min(r, rows - 1)) << BITS);
    if constexpr (kPair) {
      table[r][2 * e] = __half2float(lut_row[e >> 2]);
      table[r][2 * e + 1] = __half2float(lut_row[e & 3]);
    } else {
      table[r][e] = __half2float(lut_row[e]);
    }
  }
  __syncthreads();
  GridDependencyWait();  // x is the previous kernel's output
  TriggerDependents();
  const uint32_t table_base = static_cast<uint32_t>(__cvta_generic_to_shared(&table[0][0]));

  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  }

  for (; chunk * 1024 < kpad; chunk += kLowBitWarps) {
    const int T = words_in(chunk);
    // Code words of this lane's 32 columns for every row (4 words per row; the planes die here).
    uint32_t code[R][4];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      if constexpr (kPair) {
        code[r][0] =
            (w[r][0] & 0xAAAAAAAAu) | ((w[r][1] >> 1) & 0x55555555u);  // nibble k: bits 4k+3, 4k+1
        code[r][1] =
            ((w[r][0] << 1) & 0xAAAAAAAAu) | (w[r][1] & 0x55555555u);  // nibble k: bits 4k+2, 4k
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          uint32_t t = 0;
#pragma unroll
          for (int b = 0; b < BITS; ++b) {
            // Plane b holds code bit BITS-1-b; column bit 4k+j goes to nibble bit BITS-1-b.
            const int up = BITS - 1 - b - j;
            const uint32_t shifted =
                up >= 0 ? (w[r][b] << (up >= 0 ? up : 0)) : (w[r][b] >> (up < 0 ? -up : 0));
            t |= shifted & (0x11111111u << (BITS - 1 - b));
          }
          code[r][j] = t;
        }
      }
    }
    const int next = chunk + kLowBitWarps;
    if (next * 1024 < kpad && lane < words_in(next)) load_words(next);
    if (lane >= T) continue;  // only in the last, partial chunk
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      // The 8 activations of run s (columns 8Ts + 8t .. +7 of the chunk) for every token.
      const int col0 = chunk * 1024 + 8 * T * s + 8 * lane;
      float xv[M][8];
      LoadActivationRun<M>(x, K, col0, x_vec, xv);
      // Run s is byte 3-s of the plane words: nibbles kh = 7-2s (bits 31-8s .. 28-8s) and kl =
      // 6-2s.
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const uint32_t base = table_base + r * kTableBytes;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int k = 7 - 2 * s - half;  // nibble
          if constexpr (kPair) {
            constexpr uint32_t kMask = 0x78u;  // nibble * 8 bytes
#pragma unroll
            for (int q = 0; q < 2; ++q) {
              // q = 0: word code[r][0], columns at bits 4k+3 (.x) and 4k+1 (.y); q = 1: bits 4k+2,
              // 4k.
              const uint32_t t = code[r][q];
              const uint32_t off =
                  (4 * k - 3 >= 0 ? t >> (4 * k - 3 >= 0 ? 4 * k - 3 : 0) : t << 3) & kMask;
              const float2 wv = LoadSharedF32x2(base | off);
              const int cx = RunColumn(4 * k + 3 - q), cy = RunColumn(4 * k + 1 - q);
#pragma unroll
              for (int m = 0; m < M; ++m) {
                acc[r][m] = fmaf(wv.x, xv[m][cx], acc[r][m]);
                acc[r][m] = fmaf(wv.y, xv[m][cy], acc[r][m]);
              }
            }
          } else {
            constexpr uint32_t kMask = ((1u << BITS) - 1) << 2;  // code * 4 bytes
#pragma unroll
            for (int j = 0; j < 4; ++j) {
              const uint32_t t = code[r][j];
              const uint32_t off =
                  (4 * k - 2 >= 0 ? t >> (4 * k - 2 >= 0 ? 4 * k - 2 : 0) : t << 2) & kMask;
              const float wt = LoadSharedF32(base | off);
              const int c = RunColumn(4 * k + j);
#pragma unroll
              for (int m = 0; m < M; ++m) acc[r][m] = fmaf(wt, xv[m][c], acc[r][m]);
            }
          }
        }
      }
    }
  }

  if constexpr (kScatter) {
    float v[kValues];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int m = 0; m < M; ++m) v[r * M + m] = acc[r][m];
    }
    const float sum = WarpReduceScatter<kValues>(v, lane);
    constexpr int kShift = 5 - Log2(kValues);
    if ((lane & ((1 << kShift) - 1)) == 0) partial[warp][lane >> kShift] = sum;
  } else {
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int m = 0; m < M; ++m) {
        const float v = WarpSum(acc[r][m]);
        if (lane == 0) partial[warp][r * M + m] = v;
      }
    }
  }
  __syncthreads();
  for (int i = threadIdx.x; i < kValues; i += blockDim.x) {
    const int r = i / M, m = i % M;
    if (r >= rows) continue;
    float v = 0.f;
#pragma unroll
    for (int wp = 0; wp < kLowBitWarps; ++wp) v += partial[wp][i];
    y[static_cast<size_t>(m) * N + n0 + r] = v;
  }
}

// Rows per block: 8 at 1-2 tokens (4 at p = 3, 4), 4 at 3-4 tokens, 2 beyond (registers: R M
// accumulators, 8 M activations, 2-4 R code words and p R prefetched plane words per lane). H100,
// kernels/NOTES.md: p = 3, 4 at R = 4 vs 8 is within +-10 % either way (8: 127 -> 155 registers);
// capping registers for occupancy (__launch_bounds__ min blocks 6) gained nothing either.
// With `overlap`, launched as a programmatic dependent launch: its prologue (planes, LUTs) runs
// while the preceding kernel on the stream finishes.
template <int BITS, int M>
void LaunchLowBitGemv(const float* x, const uint32_t* qweight, const __half* lut, int N, int K,
                      bool x_vec, float* y, bool overlap, cudaStream_t stream) {
  constexpr int R = M <= 2 ? (BITS == 2 ? 8 : 4) : (M <= 4 ? 4 : 2);
  LaunchOverlapped(AnyprecGemvLowBitKernel<BITS, M, R>, dim3((N + R - 1) / R),
                   dim3(kLowBitWarps * 32), stream, overlap, x, qweight, lut, N, K, x_vec, y);
}

}  // namespace anyprec_detail
}  // namespace pmpd::kernels
