// CPU reference of the any-precision weight format: pack P-bit codes into bitplanes, read the top p
// planes back, dequantize through per-row lookup tables, and multiply straight from the planes.
//
// Math: W_p[n,k] = lut_p[n][code_P(n,k) >> (P - p)]; y = x W_p^T. No scale, no zero point.
//
// Layout (the public Any-Precision LLM packer's, so its checkpoints load as they are):
//   qweight: uint32 [P, N, Kw], Kw = ceil(K / 32); plane b holds bit (P-1-b) of the code (plane 0 =
//   MSB). K is padded to a multiple of 32 with zero codes (the reference needs K % 32 == 0; we
//   pad). Columns go in chunks of 1024; a chunk owns 32 words (T = 32 lanes), the last partial
//   chunk T = (Kpad mod 1024) / 32 words. Within a chunk, for column c (0..1023):
//
//       s = c / (8T)   t = (c mod 8T) / 8   r = c mod 8
//       word = 32 * chunk + t      bit = 31 - 8s - r
//
//     word t of a chunk:  | byte 3: run s=0 | byte 2: run s=1 | byte 1: run s=2 | byte 0: run s=3 |
//                         each run = 8 contiguous columns (8T*s + 8t .. +7), MSB-first in its byte
//
//   so a warp (lane t) reading one word per plane covers 4 runs of 8 columns: 128 coalesced bytes
//   per plane per chunk.
#pragma once

#include <cstdint>

namespace pmpd::kernels {

constexpr int kAnyprecMinBits = 2;
constexpr int kAnyprecMaxBits = 8;

// Words per row per plane.
constexpr int AnyprecWordsPerRow(int K) { return (K + 31) / 32; }

// Where column k of a row lives: word index within the row's plane, and bit position in the word.
inline void AnyprecBitPosition(int K, int k, int* word, int* bit) {
  const int kpad = AnyprecWordsPerRow(K) * 32;
  const int chunk = k / 1024, c = k % 1024;
  const int T = (chunk + 1) * 1024 <= kpad ? 32 : (kpad % 1024) / 32;
  const int s = c / (8 * T), t = (c % (8 * T)) / 8, r = c % 8;
  *word = 32 * chunk + t;
  *bit = 31 - 8 * s - r;
}

// codes: uint8 [N, K], values < 2^P. qweight: [P, N, Kw], fully written. O(N * K * P).
void AnyprecPackRef(const uint8_t* codes, int N, int K, int P, uint32_t* qweight);

// Top-p-bit codes (code_P >> (P - p)) of every weight: codes [N, K]. 1 <= p <= P.
void AnyprecUnpackRef(const uint32_t* qweight, int N, int K, int P, int p, uint8_t* codes);

// W_p as float32 [N, K]; lut: fp16 bits [N, 2^p]. O(N * K * p).
void AnyprecDequantRef(const uint32_t* qweight, const uint16_t* lut, int N, int K, int P, int p,
                       float* w);

// y[M, N] = x[M, K] * W_p^T, accumulated in double (a tighter reference than the fp32 kernels),
// read straight from the planes: O(N * K * (p + M)); allocates O(K).
void AnyprecGemmRef(const float* x, int M, const uint32_t* qweight, const uint16_t* lut, int N,
                    int K, int P, int p, float* y);

}  // namespace pmpd::kernels
