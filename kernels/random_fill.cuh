// Random weights generated on the GPU (CudaEngine::CreateRandom: a 7B shape holds billions of
// weights, too many to draw or quantize on the CPU). Values come from RandomHash(seed, index)
// (kernels/random_hash.h), so they do not depend on the launch configuration; CPU references with
// the same values: kernels/ref/random_fill_ref.h. Asynchronous on `stream`, allocate nothing.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace pmpd::kernels {

// p[i] = uniformly random 32-bit words (bitplanes: uniform random codes at every precision).
void FillRandomWords(uint32_t* p, size_t n, uint64_t seed, cudaStream_t stream);
// p[i] uniform in [lo, hi) (lo == hi: a constant).
void FillUniformF32(float* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream);
void FillUniformF16(__half* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream);
// Per-row LUTs at `bits` on a nested grid: lut[r, c] = a_r * ((2c + 1) / 2^bits - 1), a_r in
// [max_abs / 2, max_abs) drawn from (seed, r) alone, so the LUTs of every precision of one matrix
// (same seed) agree: entry c at b bits is the mean of entries 2c and 2c + 1 at b + 1 bits.
void FillGridLut(__half* lut, int rows, int bits, float max_abs, uint64_t seed,
                 cudaStream_t stream);

}  // namespace pmpd::kernels
