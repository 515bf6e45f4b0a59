// EXPERIMENT (not used by the library; kernels/NOTES.md, session of 2026-12-03): a tensor-core
// any-precision GEMV for p = 2..4 bits at batch 1 (v9). Measured on the H200 it is 1.6-2.9x slower
// than v7: each 16-row block prepares the x fragments itself (a pass over x for the scale, then
// scattered loads), which costs more than its whole main loop; with that preparation skipped the
// main loop alone runs at v7's speed (both wait on memory latency, not on instructions). It would
// pay only with x prepared once per step by the kernel that produces x, inside a fused decode
// path. Run by bench/sweeps/gemv_mma_sweep.cu.
//
// Why: the code-word kernel (v7) is issue-bound, not memory-bound (Nsight Compute on the H200,
// kernels/NOTES.md: 74 % of issue slots busy at p = 4 on 22016x4096 with 7.6 lane instructions per
// weight, of which one FFMA, one LDS and two address instructions per weight in the loop). Here the
// multiply-adds go to the tensor cores (mma.sync m16n8k16, fp16 inputs, fp32 accumulation) and a
// weight costs only its lookup: per lane and mma step, 8 weights (rows g and g + 8 of a 16-row
// tile, 4 columns) come from 4 half2 lookups at p = 2 (a pair table: one lookup dequantizes two
// columns) or 8 fp16 lookups + 4 packs at p = 3, 4, each lookup one PRMT (its shared address) and
// one LDS; about 1.6 (p = 2) to 4 (p = 4) lane instructions per weight instead of 4 to 7.6.
//
// Tables without bank conflicts: the lanes of an mma fragment hold 8 different rows, so a shared
// table per row would conflict on random codes. Each lane gets its own copy of the tables of its
// two rows, entry e of row half h at byte tab_addr + e * 256 + h * 128 + lane * 4 (tab_addr 4 KB
// aligned): every lookup of a lane hits bank `lane`, and the shared address is one PRMT of a code
// byte (e, into byte 1) with the lane's base. Table bytes: 2^p * 256 (p = 3, 4) or 16 * 256 (p = 2,
// pairs).
//
// Column order: any permutation of K works if x follows it. Lane (g, t) (g = lane / 4, t = lane %
// 4) holds words 4t .. 4t + 3 of its rows' planes in each 512-column half of a 1024-column chunk
// (the layout of kernels/ref/anyprec_ref.h), so lanes with the same t hold the same columns, as
// the mma's B fragment requires. A word's 32 columns are 16 pairs (q, k): columns at word bits
// 4k + 3 - q and 4k + 1 - q (v7's pair code words); mma step v of a word takes pairs (0, v) for
// k-slots 2t, 2t + 1 and (1, v) for 2t + 8, 2t + 9. The block writes x in this order into shared
// memory once, as fp16 pairs split in two (hi = fp16(x s), lo = fp16(x s - hi), s a power of two
// that puts max |x| in [2^13, 2^14)), and every step runs two mmas (hi, lo): about 22 bits of x
// and no fp16 overflow; products and sums are fp32 (the CPU reference's contract).
//
// Work split: a block of kMmaWarps warps owns a 16-row tile; its warps take the 512-column items
// (chunk, half) round robin, with the next item's planes loaded while the current one computes;
// the warps' partial sums meet in shared memory. Shared memory: the tables, 4 KB of x fragments per
// 1024 columns of K. Requires K <= kMmaMaxK, ceil(K / 32) % 4 == 0 and a 16-byte aligned qweight
// (16-byte plane loads): MmaGemvApplies.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace anyprec_detail {

constexpr int kMmaMaxK = 40 * 1024;  // x fragments: 4 KB per 1024 columns of shared memory

__device__ __forceinline__ uint32_t Prmt(uint32_t a, uint32_t b, uint32_t selector) {
  uint32_t r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}

// d += a * b: A 16x16 fp16 (row), B 16x8 fp16 (col), D 16x8 fp32 (PTX fragment layouts).
__device__ __forceinline__ void MmaF16F32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                          uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t PackHalf2(__half lo, __half hi) {
  return static_cast<uint32_t>(__half_as_ushort(lo)) |
         (static_cast<uint32_t>(__half_as_ushort(hi)) << 16);
}

// Word bit of pair (q, k)'s first / second column (columns at word bits 4k + 3 - q, 4k + 1 - q).
__host__ __device__ constexpr int PairFirstBit(int q, int k) { return 4 * k + 3 - q; }
__host__ __device__ constexpr int PairSecondBit(int q, int k) { return 4 * k + 1 - q; }

template <int BITS, int kMmaWarps = 4, bool kSkipPrep = false>
__global__ void __launch_bounds__(kMmaWarps * 32)
    AnyprecGemvMmaKernel(const float* __restrict__ x, const uint32_t* __restrict__ qweight,
                         const __half* __restrict__ lut, int N, int K, float* __restrict__ y) {
  static_assert(BITS >= 2 && BITS <= 4, "the mma kernel serves p = 2..4");
  constexpr bool kPair = BITS == 2;
  constexpr int kEntries = kPair ? 16 : (1 << BITS);
  __shared__ float partial[kMmaWarps][16];
  __shared__ float scratch[32];
  // Dynamic shared memory: up to 4 KB of slack, the tables at a 4 KB-aligned shared address
  // tab_addr (so a lookup address is one PRMT, see below), then the x fragments.
  extern __shared__ __align__(16) char dyn[];
  const uint32_t dyn_addr = static_cast<uint32_t>(__cvta_generic_to_shared(dyn));
  const uint32_t tab_addr = (dyn_addr + 4095u) & ~4095u;
  uint32_t* const tab = reinterpret_cast<uint32_t*>(dyn + (tab_addr - dyn_addr));  // [e][h][lane]
  uint4* const xfrag =  // [item][word u][step v][t]: {hi b0, hi b1, lo b0, lo b1}
      reinterpret_cast<uint4*>(dyn + (tab_addr - dyn_addr) + kEntries * 256);

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int n0 = blockIdx.x * 16;
  const int kw = (K + 31) / 32;
  const int chunks = (kw + 31) / 32;
  const int items = 2 * chunks;  // 512-column halves of chunks
  const size_t plane_stride = static_cast<size_t>(N) * kw;
  auto words_in = [&](int c) { return min(32, kw - 32 * c); };

  // Planes of one item: rows g and g + 8 (clamped), words 4t .. 4t + 3 of the item's half.
  uint4 pw[2][BITS];
  auto load_item = [&](int item) {
    const int c = item / 2, wd0 = 16 * (item % 2) + 4 * t;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = min(n0 + g + 8 * h, N - 1);
      const uint32_t* p = qweight + static_cast<size_t>(row) * kw + 32 * c + wd0;
#pragma unroll
      for (int b = 0; b < BITS; ++b) {
        pw[h][b] = wd0 < words_in(c) ? __ldg(reinterpret_cast<const uint4*>(p + b * plane_stride))
                                     : make_uint4(0, 0, 0, 0);
      }
    }
  };

  // Prologue, before the wait on the previous kernel: the first item's planes and the tables.
  int item = warp;
  if (item < items) load_item(item);
#pragma unroll
  for (int i = threadIdx.x; i < kEntries * 64; i += kMmaWarps * 32) {
    const int e = i / 64, h = (i / 32) % 2, l = i % 32;
    const int row = min(n0 + l / 4 + 8 * h, N - 1);
    const __half* lut_row = lut + (static_cast<size_t>(row) << BITS);
    if constexpr (kPair) {
      tab[i] = PackHalf2(lut_row[e >> 2], lut_row[e & 3]);
    } else {
      const __half v = lut_row[e];
      tab[i] = PackHalf2(v, v);
    }
  }

  GridDependencyWait();  // x is the previous kernel's output
  TriggerDependents();
  // Scale: max |x| into [2^13, 2^14) (a power of two: exact, undone on y).
  float amax = 0.f;
  for (int i = threadIdx.x; i < (kSkipPrep ? 0 : K); i += blockDim.x)
    amax = fmaxf(amax, fabsf(x[i]));
  amax = BlockMax(amax, scratch);
  // amax in [2^(e2-1), 2^e2) from its exponent bits (frexpf would need a stack slot); a
  // subnormal amax is clamped so the scale stays finite.
  const int e2 = max(static_cast<int>((__float_as_uint(amax) >> 23) & 0xffu) - 126, -100);
  const float scale = amax > 0.f ? exp2f(static_cast<float>(14 - e2)) : 1.f;
  // x fragments in the mma's column order (zeros past K and in words past a chunk's end).
  for (int i = threadIdx.x; i < (kSkipPrep ? 0 : items * 128); i += blockDim.x) {
    const int tt = i % 4, v = (i / 4) % 8, u = (i / 32) % 4, it = i / 128;
    const int c = it / 2, wd = 16 * (it % 2) + 4 * tt + u, T = words_in(c);
    float xs[4] = {0.f, 0.f, 0.f, 0.f};
    if (wd < T) {
      const int bits[4] = {PairFirstBit(0, v), PairSecondBit(0, v), PairFirstBit(1, v),
                           PairSecondBit(1, v)};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int s = (31 - bits[j]) / 8, r = (31 - bits[j]) % 8;
        const int col = 1024 * c + 8 * T * s + 8 * wd + r;
        xs[j] = col < K ? x[col] * scale : 0.f;
      }
    }
    __half hi[4], lo[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      hi[j] = __float2half_rn(xs[j]);
      lo[j] = __float2half_rn(xs[j] - __half2float(hi[j]));
    }
    xfrag[i] = make_uint4(PackHalf2(hi[0], hi[1]), PackHalf2(hi[2], hi[3]), PackHalf2(lo[0], lo[1]),
                          PackHalf2(lo[2], lo[3]));
  }
  __syncthreads();

  // Lookup address tab_addr + e * 256 + h * 128 + lane * 4 as one PRMT: bytes 0, 2, 3 from the
  // lane's base (tab_addr is 4 KB-aligned, so its byte 1 has a zero low nibble), byte 1 = a code
  // byte that already carries e in its low nibble and tab_addr's byte 1 in its high nibble.
  const uint32_t hi_nibble = ((tab_addr >> 8) & 0xF0u) * 0x01010101u;
  auto lookup = [&](uint32_t src, int byte, uint32_t lane_base) -> uint32_t {
    const uint32_t addr = Prmt(src, lane_base, 0x7604u | (static_cast<uint32_t>(byte) << 4));
    uint32_t v;
    asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(addr));
    return v;
  };
  const uint32_t lane_byte[2] = {tab_addr + lane * 4, tab_addr + 128 + lane * 4};

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (; item < items; item += kMmaWarps) {
    uint4 cur[2][BITS];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int b = 0; b < BITS; ++b) cur[h][b] = pw[h][b];
    }
    if (item + kMmaWarps < items) load_item(item + kMmaWarps);
    const uint4* xf = xfrag + item * 128 + t;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      // Byte-split code words: cb[h][q or j][0] holds even nibbles, [1] odd nibbles, one per byte.
      uint32_t w[2][BITS];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
#pragma unroll
        for (int b = 0; b < BITS; ++b) {
          const uint4 v4 = cur[h][b];
          w[h][b] = u == 0 ? v4.x : (u == 1 ? v4.y : (u == 2 ? v4.z : v4.w));
        }
      }
      constexpr int kWords = kPair ? 2 : 4;
      uint32_t cb[2][kWords][2];
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        uint32_t code[kWords];
        if constexpr (kPair) {
          code[0] = (w[h][0] & 0xAAAAAAAAu) | ((w[h][1] >> 1) & 0x55555555u);
          code[1] = ((w[h][0] << 1) & 0xAAAAAAAAu) | (w[h][1] & 0x55555555u);
        } else {
#pragma unroll
          for (int j = 0; j < 4; ++j) {
            uint32_t c = 0;
#pragma unroll
            for (int b = 0; b < BITS; ++b) {
              const int up = BITS - 1 - b - j;
              const uint32_t shifted =
                  up >= 0 ? (w[h][b] << (up >= 0 ? up : 0)) : (w[h][b] >> (up < 0 ? -up : 0));
              c |= shifted & (0x11111111u << (BITS - 1 - b));
            }
            code[j] = c;  // nibble k: code of the column at word bit 4k + j
          }
        }
#pragma unroll
        for (int j = 0; j < kWords; ++j) {
          cb[h][j][0] = (code[j] & 0x0F0F0F0Fu) | hi_nibble;
          cb[h][j][1] = ((code[j] >> 4) & 0x0F0F0F0Fu) | hi_nibble;
        }
      }
#pragma unroll
      for (int v = 0; v < 8; ++v) {
        // Nibble v of a code word: byte v / 2 of its even (v even) or odd split.
        const int byte = v / 2, odd = v % 2;
        uint32_t a[4];
#pragma unroll
        for (int q = 0; q < 2; ++q) {
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            uint32_t val;
            if constexpr (kPair) {
              val = lookup(cb[h][q][odd], byte, lane_byte[h]);
            } else {
              // Columns at bits 4v + 3 - q (t_{3-q}) and 4v + 1 - q (t_{1-q}).
              const uint32_t first = lookup(cb[h][3 - q][odd], byte, lane_byte[h]);
              const uint32_t second = lookup(cb[h][1 - q][odd], byte, lane_byte[h]);
              val = Prmt(first, second, 0x5410u);  // low halves: (first, second)
            }
            a[2 * q + h] = val;  // a0: row g pair (0, v); a1: row g+8; a2, a3: pair (1, v)
          }
        }
        const uint4 b = xf[(u * 8 + v) * 4];
        MmaF16F32(acc, a, b.x, b.y);
        MmaF16F32(acc, a, b.z, b.w);
      }
    }
  }

  // Token 0 is column n = 0 of D: acc[0] (row g) and acc[2] (row g + 8) of the lanes with t = 0.
  if (t == 0) {
    partial[warp][g] = acc[0];
    partial[warp][g + 8] = acc[2];
  }
  __syncthreads();
  if (threadIdx.x < 16 && n0 + threadIdx.x < N) {
    float v = 0.f;
#pragma unroll
    for (int wp = 0; wp < kMmaWarps; ++wp) v += partial[wp][threadIdx.x];
    y[n0 + threadIdx.x] = v / scale;
  }
}

// Whether the mma kernel serves this call (batch 1 only for now).
inline bool MmaGemvApplies(int M, const uint32_t* qweight, int K) {
  return M == 1 && K <= kMmaMaxK && ((K + 31) / 32) % 4 == 0 &&
         reinterpret_cast<uintptr_t>(qweight) % 16 == 0;
}

template <int BITS, int kMmaWarps = 4, bool kSkipPrep = false>
void LaunchMmaGemv(const float* x, const uint32_t* qweight, const __half* lut, int N, int K,
                   float* y, bool overlap, cudaStream_t stream) {
  const int chunks = ((K + 31) / 32 + 31) / 32;
  constexpr int kTableBytes = 4096 + (BITS == 2 ? 16 : (1 << BITS)) * 256;  // with the slack
  const int smem = kTableBytes + chunks * 4096;
  static const bool configured = [] {
    PMPD_CUDA_CHECK(cudaFuncSetAttribute(AnyprecGemvMmaKernel<BITS, kMmaWarps, kSkipPrep>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         kTableBytes + (kMmaMaxK / 1024) * 4096));
    return true;
  }();
  (void)configured;
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3((N + 15) / 16);
  config.blockDim = dim3(kMmaWarps * 32);
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = overlap ? 1 : 0;
  PMPD_CUDA_CHECK(cudaLaunchKernelEx(&config, AnyprecGemvMmaKernel<BITS, kMmaWarps, kSkipPrep>, x,
                                     qweight, lut, N, K, y));
}

}  // namespace anyprec_detail
}  // namespace pmpd::kernels
