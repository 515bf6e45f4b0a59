// Any-precision matrix-vector product on the GPU, for 1..8 tokens at p = 2..8 bits, straight from
// the bitplanes (layout in kernels/ref/anyprec_ref.h), fp32 accumulation, any N and K.
// Host launchers only; the CPU reference with the same contract is AnyprecGemmRef.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

constexpr int kAnyprecGemvMaxTokens = 8;

// Which kernel serves p <= 4: kAuto = the code-word kernel (v7, anyprec_gemv_lowbit_kernel.cuh);
// kGeneric = the per-weight LUT kernel that serves p >= 5 (kept selectable for tests and
// benchmarks).
enum class AnyprecGemvPath { kAuto, kGeneric };

// y[M, N] = x[M, K] * W_p^T. x, y fp32 row-major on the device; qweight [P, N, ceil(K/32)];
// lut: fp16 [N, 2^p] for precision p, finite (padding columns multiply a LUT entry by zero).
// 1 <= M <= 8, 2 <= p <= P <= 8. Asynchronous on `stream`; with `overlap_previous` (p <= 4, sm_90)
// it is a programmatic dependent launch that reads the planes and LUTs while the preceding kernel
// on `stream` still runs (that kernel must not write them; x and y wait for it); allocates nothing.
// Reads p/8 bytes per weight plus the LUTs, x and y once.
void AnyprecGemv(const float* x, int M, const uint32_t* qweight, const __half* lut, int N, int K,
                 int P, int p, float* y, cudaStream_t stream,
                 AnyprecGemvPath path = AnyprecGemvPath::kAuto, bool overlap_previous = false);

// W_p as fp16 [N, K] (for prefill: dequantize once, then a dense GEMM). Asynchronous on `stream`.
void AnyprecDequant(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                    __half* w, cudaStream_t stream);

// The same as fp32 [N, K] (exact: every LUT entry is an fp16 value), for prefill through an fp32
// GEMM that keeps the CPU engine's numerics. Writes 4 N K bytes. Asynchronous on `stream`.
void AnyprecDequantF32(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                       float* w, cudaStream_t stream);

}  // namespace pmpd::kernels
