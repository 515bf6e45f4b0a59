// The tensor-core any-precision GEMV for p = 2..4 bits and 1..8 tokens (v10), included by
// anyprec_gemv_b{2,3,4}.cu; AnyprecGemv (anyprec_gemv.cuh) picks it for several tokens.
//
// Why: the code-word kernel (v7) pays an FFMA and an activation load per weight and token, so
// 4 tokens cost it twice the time of one (kernels/NOTES.md). Here the multiply-adds go to the
// tensor cores (mma.sync m16n8k16, fp16 inputs, fp32 accumulation) whose n = 8 columns are the
// tokens: a weight costs its lookup once for up to 8 tokens. Per lane and mma step, 8 weights (rows
// g and g + 8 of a 16-row tile, 4 columns) come from 4 half2 lookups at p = 2 (a pair table: one
// lookup dequantizes two columns) or 8 fp16 lookups + 4 packs at p = 3, 4; each lookup is one
// PRMT (its shared address) and one LDS.
//
// Tables without bank conflicts: the lanes of an mma fragment hold 8 different rows, so a shared
// table per row would conflict on random codes. Each lane gets its own copy of the tables of its
// two rows, entry e of row half h at byte tab_addr + e * 256 + h * 128 + lane * 4 (tab_addr 4 KB
// aligned): every lookup of a lane hits bank `lane`, and the shared address is one PRMT of a code
// byte (e, into byte 1) with the lane's base. Table bytes: 2^p * 256 (p = 3, 4) or 16 * 256
// (p = 2, pairs).
//
// Column order: any permutation of K works if x follows it. Lane (g, t) (g = lane / 4, t = lane %
// 4) holds words 4t .. 4t + 3 of its rows' planes in each 512-column half of a 1024-column chunk
// (the layout of kernels/ref/anyprec_ref.h), so lanes with the same t hold the same columns, as
// the mma's fragments require. A word's 32 columns are 16 pairs (q, k): columns at word bits
// 4k + 3 - q and 4k + 1 - q (v7's pair code words); mma step v of a word takes pairs (0, v) for
// k-slots 2t, 2t + 1 and (1, v) for 2t + 8, 2t + 9.
//
// x: MmaPrepareXKernel writes every token's activations once per call into the workspace in that
// order, as B fragments (lane (g, t) of step s reads token g's uint4 {hi b0, hi b1, lo b0, lo b1}),
// split in two fp16 halves after a power-of-two scale per token that puts its max |x| in
// [2^13, 2^14): hi = fp16(x s), lo = fp16(x s - hi), each x within 2^-23 of its token's max |x|, no
// fp16 overflow; two mmas per step (hi, lo); products and sums are fp32, y = D / s (exact). An
// earlier variant that built the fragments inside every 16-row block spent more time on that than
// on its weights (kernels/NOTES.md, session of 2026-12-03).
//
// Work split: a block of kMmaWarps warps owns a 16-row tile; its warps take the 512-column items
// (chunk, half) round robin, with the next item's planes loaded while the current one computes;
// the warps' partial sums meet in shared memory. Planes load 16 bytes per lane and plane when rows
// are 16-byte aligned (ceil(K / 32) % 4 == 0 and qweight aligned), word by word otherwise.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace anyprec_detail {

constexpr int kMmaWarps = 4;
constexpr int kMmaMaxK = 64 * 1024;

// Items (512-column halves of 1024-column chunks) of K columns.
__host__ __device__ inline int MmaItems(int K) { return 2 * (((K + 31) / 32 + 31) / 32); }

// Workspace of M tokens: the fragments (128 uint4 per item and token), then M inverse scales.
inline size_t MmaWorkspaceBytes(int M, int K) {
  return static_cast<size_t>(MmaItems(K)) * 128 * M * 16 + static_cast<size_t>(M) * 4;
}

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

// One block of kThreads per token: the token's scale, then its fragments. Fragment (item, step s =
// 8 u + v, token, t) at ((item * 32 + s) * M + token) * 4 + t; zeros past K and in words past a
// chunk's end. The M inverse scales follow the fragments.
template <int kThreads>
__global__ void __launch_bounds__(kThreads)
    MmaPrepareXKernel(const float* __restrict__ x, int M, int K, uint4* __restrict__ frag) {
  __shared__ float scratch[32];
  GridDependencyWait();  // x is the previous kernel's output
  TriggerDependents();   // the GEMV may load its planes and tables meanwhile
  const int token = blockIdx.x;
  const float* xt = x + static_cast<size_t>(token) * K;
  float amax = 0.f;
  for (int i = threadIdx.x; i < K; i += kThreads) amax = fmaxf(amax, fabsf(xt[i]));
  amax = BlockMax(amax, scratch);
  // amax in [2^(e2-1), 2^e2) from its exponent bits; a subnormal amax is clamped so the scale
  // stays finite.
  const int e2 = max(static_cast<int>((__float_as_uint(amax) >> 23) & 0xffu) - 126, -100);
  const float scale = amax > 0.f ? exp2f(static_cast<float>(14 - e2)) : 1.f;
  const int kw = (K + 31) / 32, items = MmaItems(K);
  for (int i = threadIdx.x; i < items * 128; i += kThreads) {
    const int tt = i % 4, v = (i / 4) % 8, u = (i / 32) % 4, it = i / 128;
    const int c = it / 2, wd = 16 * (it % 2) + 4 * tt + u, T = min(32, kw - 32 * c);
    float xs[4] = {0.f, 0.f, 0.f, 0.f};
    if (wd < T) {
      const int bits[4] = {PairFirstBit(0, v), PairSecondBit(0, v), PairFirstBit(1, v),
                           PairSecondBit(1, v)};
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int s = (31 - bits[j]) / 8, r = (31 - bits[j]) % 8;
        const int col = 1024 * c + 8 * T * s + 8 * wd + r;
        xs[j] = col < K ? xt[col] * scale : 0.f;
      }
    }
    __half hi[4], lo[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      hi[j] = __float2half_rn(xs[j]);
      lo[j] = __float2half_rn(xs[j] - __half2float(hi[j]));
    }
    frag[((it * 32 + u * 8 + v) * M + token) * 4 + tt] =
        make_uint4(PackHalf2(hi[0], hi[1]), PackHalf2(hi[2], hi[3]), PackHalf2(lo[0], lo[1]),
                   PackHalf2(lo[2], lo[3]));
  }
  if (threadIdx.x == 0) {
    reinterpret_cast<float*>(frag + static_cast<size_t>(items) * 128 * M)[token] = 1.f / scale;
  }
}

template <int BITS, int M>
__global__ void __launch_bounds__(kMmaWarps * 32)
    AnyprecGemvMmaKernel(const uint4* __restrict__ frag, const uint32_t* __restrict__ qweight,
                         const __half* __restrict__ lut, int N, int K, bool vec,
                         float* __restrict__ y) {
  static_assert(BITS >= 2 && BITS <= 4, "the mma kernel serves p = 2..4");
  static_assert(M >= 1 && M <= 8, "the mma's n = 8 columns hold the tokens");
  constexpr bool kPair = BITS == 2;
  constexpr int kEntries = kPair ? 16 : (1 << BITS);
  __shared__ float partial[kMmaWarps][16][8];
  // Dynamic shared memory: up to 4 KB of slack, then the tables at a 4 KB-aligned shared address
  // tab_addr (so a lookup address is one PRMT, see below).
  extern __shared__ __align__(16) char dyn[];
  const uint32_t dyn_addr = static_cast<uint32_t>(__cvta_generic_to_shared(dyn));
  const uint32_t tab_addr = (dyn_addr + 4095u) & ~4095u;
  uint32_t* const tab = reinterpret_cast<uint32_t*>(dyn + (tab_addr - dyn_addr));  // [e][h][lane]

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int n0 = blockIdx.x * 16;
  const int kw = (K + 31) / 32;
  const int items = MmaItems(K);
  const size_t plane_stride = static_cast<size_t>(N) * kw;

  // Planes of one item: rows g and g + 8 (clamped), words 4t .. 4t + 3 of the item's half.
  uint4 pw[2][BITS];
  auto load_item = [&](int item) {
    const int c = item / 2, wd0 = 16 * (item % 2) + 4 * t;
    const int T = min(32, kw - 32 * c);  // words of this chunk
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = min(n0 + g + 8 * h, N - 1);
      const uint32_t* p = qweight + static_cast<size_t>(row) * kw + 32 * c + wd0;
#pragma unroll
      for (int b = 0; b < BITS; ++b) {
        const uint32_t* pb = p + b * plane_stride;
        if (vec) {  // T is a multiple of 4 here: all four words or none
          pw[h][b] = wd0 < T ? __ldg(reinterpret_cast<const uint4*>(pb)) : make_uint4(0, 0, 0, 0);
        } else {
          pw[h][b] = make_uint4(wd0 < T ? __ldg(pb) : 0u, wd0 + 1 < T ? __ldg(pb + 1) : 0u,
                                wd0 + 2 < T ? __ldg(pb + 2) : 0u, wd0 + 3 < T ? __ldg(pb + 3) : 0u);
        }
      }
    }
  };

  // Prologue, before the wait on the previous kernel: the first item's planes and the tables.
  int item = warp;
  if (item < items) load_item(item);
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
  GridDependencyWait();  // the fragments are the preparation kernel's output
  TriggerDependents();
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
  const uint32_t lane_base[2] = {tab_addr + lane * 4, tab_addr + 128 + lane * 4};

  float acc[4] = {0.f, 0.f, 0.f, 0.f};
  for (; item < items; item += kMmaWarps) {
    uint4 cur[2][BITS];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
#pragma unroll
      for (int b = 0; b < BITS; ++b) cur[h][b] = pw[h][b];
    }
    if (item + kMmaWarps < items) load_item(item + kMmaWarps);
    // This lane's token (g < M; the others multiply zeros) and column group t.
    const uint4* xf = frag + static_cast<size_t>(item) * 32 * M * 4 + min(g, M - 1) * 4 + t;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      uint4 xb[8];
#pragma unroll
      for (int v = 0; v < 8; ++v) {
        xb[v] = g < M ? __ldg(xf + (u * 8 + v) * M * 4) : make_uint4(0, 0, 0, 0);
      }
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
              val = lookup(cb[h][q][odd], byte, lane_base[h]);
            } else {
              // Columns at bits 4v + 3 - q (t_{3-q}) and 4v + 1 - q (t_{1-q}).
              const uint32_t first = lookup(cb[h][3 - q][odd], byte, lane_base[h]);
              const uint32_t second = lookup(cb[h][1 - q][odd], byte, lane_base[h]);
              val = Prmt(first, second, 0x5410u);  // low halves: (first, second)
            }
            a[2 * q + h] = val;  // a0: row g pair (0, v); a1: row g+8; a2, a3: pair (1, v)
          }
        }
        MmaF16F32(acc, a, xb[v].x, xb[v].y);
        MmaF16F32(acc, a, xb[v].z, xb[v].w);
      }
    }
  }

  // D[row][token]: lane (g, t) holds rows g, g + 8 of tokens 2t, 2t + 1.
  partial[warp][g][2 * t] = acc[0];
  partial[warp][g][2 * t + 1] = acc[1];
  partial[warp][g + 8][2 * t] = acc[2];
  partial[warp][g + 8][2 * t + 1] = acc[3];
  __syncthreads();
  const float* inv_scale =
      reinterpret_cast<const float*>(frag + static_cast<size_t>(items) * 128 * M);
  for (int i = threadIdx.x; i < 16 * M; i += kMmaWarps * 32) {
    const int row = i / M, token = i % M;
    if (n0 + row >= N) continue;
    float v = 0.f;
#pragma unroll
    for (int wp = 0; wp < kMmaWarps; ++wp) v += partial[wp][row][token];
    y[static_cast<size_t>(token) * N + n0 + row] = v * inv_scale[token];
  }
}

// Whether the mma kernel can serve this call.
inline bool MmaGemvApplies(int M, int K) { return M >= 1 && M <= 8 && K >= 1 && K <= kMmaMaxK; }

// The preparation kernel, then the GEMV (both programmatic dependent launches with `overlap`).
// `workspace`: MmaWorkspaceBytes(M, K), 16-byte aligned.
template <int BITS, int M>
void LaunchMmaGemv(const float* x, const uint32_t* qweight, const __half* lut, int N, int K,
                   float* y, void* workspace, bool overlap, cudaStream_t stream) {
  constexpr int kTableBytes = 4096 + (BITS == 2 ? 16 : (1 << BITS)) * 256;  // with the slack
  static const bool configured = [] {
    PMPD_CUDA_CHECK(cudaFuncSetAttribute(AnyprecGemvMmaKernel<BITS, M>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, kTableBytes));
    return true;
  }();
  (void)configured;
  auto* frag = static_cast<uint4*>(workspace);
  LaunchOverlapped(MmaPrepareXKernel<512>, dim3(M), dim3(512), stream, overlap, x, M, K, frag);
  const bool vec = ((K + 31) / 32) % 4 == 0 && reinterpret_cast<uintptr_t>(qweight) % 16 == 0;
  LaunchOverlappedSmem(AnyprecGemvMmaKernel<BITS, M>, dim3((N + 15) / 16), dim3(kMmaWarps * 32),
                       kTableBytes, stream, overlap, static_cast<const uint4*>(frag), qweight, lut,
                       N, K, vec, y);
}

}  // namespace anyprec_detail
}  // namespace pmpd::kernels
