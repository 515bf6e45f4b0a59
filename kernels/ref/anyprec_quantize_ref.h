// CPU reference of any-precision quantization of one weight row (incremental upscaling, as in
// Any-Precision LLM): a sensitivity-weighted 1-D k-means seed with 2^S centroids (k-means++ from
// std::mt19937_64(row_seed), then Lloyd with borders at the centroid midpoints), then weighted
// two-way splits of every cluster up to P bits, so that code_{b+1} = 2 code_b + bit and each child
// LUT entry is the weighted mean of its half of the parent's cluster.
//
// The CUDA version (kernels/anyprec_quantize.cuh) follows this file operation for operation in
// double precision, in the same order (serial sums stay serial), so the two agree bit for bit.
//
// Data: a row is sorted by (value, column); f_i = max(0, f) + floor (floor = 1e-8 max f, or 1 when
// every f is 0; f absent = all ones) weighs each weight; prefix sums of f, f x and f x^2 over the
// sorted row make every cluster [lo, hi) cost O(1).
#pragma once

#include <cstdint>

namespace pmpd::kernels {

// Floats of one row's LUTs at every level S..P, concatenated: 2^S + ... + 2^P.
constexpr int AnyprecLutFloats(int S, int P) { return (2 << P) - (1 << S); }
// Offset of level b's LUT (2^b floats) within a row's concatenated LUTs.
constexpr int AnyprecLutOffset(int S, int b) { return (1 << b) - (1 << S); }

// Quantizes w[K] with sensitivities f[K] (nullptr: all ones): codes[K] (P-bit, < 2^P) and luts
// [AnyprecLutFloats(S, P)] as float32 (level b's entries at AnyprecLutOffset(S, b)). Needs
// 1 <= S <= P <= 8, K >= 1, finite w. Cost: O(K log K + K 2^S + K (P - S)); allocates O(K).
void AnyprecQuantizeRowRef(const float* w, const float* f, int K, int S, int P,
                           int max_lloyd_iterations, uint64_t row_seed, uint8_t* codes,
                           float* luts);

}  // namespace pmpd::kernels
