// Any-precision quantization of one weight matrix (incremental upscaling, as in Any-Precision LLM):
// per output row, a sensitivity-weighted 1-D k-means seed with 2^S centroids, then weighted two-way
// splits of every cluster up to P bits, so that code_{b+1} = 2 code_b + bit and each child LUT
// entry is the weighted mean of its half of the parent's cluster.
#pragma once

#include <cstdint>
#include <vector>

namespace pmpd::models {

// One quantized matrix in memory: bitplanes plus one fp16 LUT per precision S..P.
struct AnyprecMatrix {
  int n = 0, k = 0;                         // out_features, in_features
  int seed_bits = 0;                        // S
  int parent_bits = 0;                      // P
  std::vector<uint32_t> qweight;            // [P, N, ceil(K/32)], see kernels/ref/anyprec_ref.h
  std::vector<std::vector<uint16_t>> luts;  // luts[b - S]: fp16 bits [N, 2^b], b = S..P

  const uint16_t* lut(int bits) const { return luts[bits - seed_bits].data(); }
};

struct AnyprecQuantizeOptions {
  int seed_bits = 3;
  int parent_bits = 8;
  int threads = 1;
  int max_lloyd_iterations = 50;
  uint64_t seed =
      0;  // k-means++ initialisation; row r uses seed ^ r, so results do not depend on threads
};

// Quantizes w [N, K] (row-major) with per-weight sensitivities (same shape; nullptr = all ones).
// Deterministic for fixed options regardless of `threads` (rows run in parallel).
// Cost: O(N K log K) (sorting dominates) plus O(N K (P - S)) for the splits.
AnyprecMatrix QuantizeAnyprec(const float* w, const float* sensitivity, int N, int K,
                              const AnyprecQuantizeOptions& options);

// Round-to-nearest uniform quantization per row, asymmetric min/max, `bits` bits: the baseline.
// Returns the dequantized matrix [N, K].
std::vector<float> QuantizeRtn(const float* w, int N, int K, int bits);

}  // namespace pmpd::models
