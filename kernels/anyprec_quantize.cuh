// Any-precision quantization on the GPU: the row algorithm of kernels/ref/anyprec_quantize_ref.h
// (weighted k-means seed, incremental upscaling) for many rows at once, and the bitplane packing
// of kernels/ref/anyprec_ref.h (AnyprecPackRef). Results equal the CPU references bit for bit: one
// thread per row runs the reference's double-precision code in its order, no multiply-add is
// contracted (-fmad=false), and ties sort by column as in the reference.
//
// Raw device pointers, asynchronous on `stream`; nothing is allocated: the caller passes scratch
// of AnyprecQuantizeScratchBytes(rows_per_batch, K) bytes, and rows are quantized rows_per_batch at
// a time (a segmented radix sort of the batch, then one thread per row).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace pmpd::kernels {

// Scratch for batches of `rows_per_batch` rows of K weights: about 64 K + 7000 bytes per row (the
// sort's buffers, three prefix sums and two k-means++ buffers in double, the generator's state,
// centres and borders) plus the sort's temporary storage.
size_t AnyprecQuantizeScratchBytes(int rows_per_batch, int K);

// w, f: [N, K] row-major (f nullptr: every sensitivity 1; w must be finite). codes: [N, K] P-bit
// codes; luts: [N, AnyprecLutFloats(S, P)] float32, each row's levels S..P concatenated (layout of
// AnyprecQuantizeRowRef). Row r uses k-means++ seed `seed ^ r`. 1 <= S <= P <= 8,
// rows_per_batch * K < 2^31. Cost: per row O(K log K) sort plus O(K (2^S + P - S)) work, of which
// the whole row runs serially on one thread, as on the CPU.
void AnyprecQuantizeRowsCuda(const float* w, const float* f, int N, int K, int S, int P,
                             int max_lloyd_iterations, uint64_t seed, int rows_per_batch,
                             void* scratch, size_t scratch_bytes, uint8_t* codes, float* luts,
                             cudaStream_t stream);

// codes [N, K] (< 2^P) -> qweight [P, N, AnyprecWordsPerRow(K)] (every word written), the layout
// drawn in kernels/ref/anyprec_ref.h. O(N K P).
void AnyprecPackCuda(const uint8_t* codes, int N, int K, int P, uint32_t* qweight,
                     cudaStream_t stream);

}  // namespace pmpd::kernels
