// Any-precision matrix-vector product on the GPU, for 1..8 tokens at p = 2..8 bits, straight from
// the bitplanes (layout in kernels/ref/anyprec_ref.h), fp32 accumulation, any N and K.
// Host launchers only; the CPU reference with the same contract is AnyprecGemmRef.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

constexpr int kAnyprecGemvMaxTokens = 8;

// Which kernel serves p <= 4 (p >= 5 always runs the generic one):
// - kCodeWord: v7 (anyprec_gemv_lowbit_kernel.cuh), an FFMA per weight and token; the fastest at
//   1-2 tokens.
// - kTensorCore: v10 (anyprec_gemv_mma_kernel.cuh), tensor-core products, nearly the same time for
//   1..8 tokens; needs the workspace. x enters as hi + lo fp16 halves after a power-of-two scale
//   per token: each x carries an absolute error up to 2^-23 of its token's max |x| (fp32 itself:
//   2^-24 of |x|), so a token with a large outlier loses low bits of its small entries.
// - kGeneric: the per-weight LUT kernel (kept for tests and benchmarks).
// - kAuto: kTensorCore from 5 tokens, or from 3 tokens when N >= 8192 (and a workspace is given),
//   else kCodeWord: the crossovers measured on the H200 (kernels/NOTES.md, 2026-12-03; 1, 2, 4 and
//   8 tokens measured, 3 and 5..7 between them).
enum class AnyprecGemvPath { kAuto, kGeneric, kCodeWord, kTensorCore };

// Bytes of the workspace the tensor-core kernel needs for M tokens of K columns (a buffer for the
// largest M and K serves every smaller call).
size_t AnyprecGemvWorkspaceBytes(int M, int K);

// y[M, N] = x[M, K] * W_p^T. x, y fp32 row-major on the device; qweight [P, N, ceil(K/32)];
// lut: fp16 [N, 2^p] for precision p, finite (padding columns multiply a LUT entry by zero).
// 1 <= M <= 8, 2 <= p <= P <= 8. `workspace`: `workspace_bytes` on the device, 16-byte aligned, or
// null; with less than AnyprecGemvWorkspaceBytes(M, K) kAuto never picks kTensorCore, and asking
// for it is an error.
// Asynchronous on `stream`; with `overlap_previous` (p <= 4, sm_90) it is a programmatic dependent
// launch that reads the planes and LUTs while the preceding kernel on `stream` still runs (that
// kernel must not write them; x and y wait for it); allocates nothing. Reads p/8 bytes per weight
// plus the LUTs, x and y once (the tensor-core path also writes and reads 4 bytes per x in the
// workspace, from L2).
void AnyprecGemv(const float* x, int M, const uint32_t* qweight, const __half* lut, int N, int K,
                 int P, int p, float* y, cudaStream_t stream,
                 AnyprecGemvPath path = AnyprecGemvPath::kAuto, bool overlap_previous = false,
                 void* workspace = nullptr, size_t workspace_bytes = 0);

// W_p as fp16 [N, K] (for prefill: dequantize once, then a dense GEMM). Asynchronous on `stream`.
void AnyprecDequant(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                    __half* w, cudaStream_t stream);

// The same as fp32 [N, K] (exact: every LUT entry is an fp16 value), for prefill through an fp32
// GEMM that keeps the CPU engine's numerics. Writes 4 N K bytes. Asynchronous on `stream`.
void AnyprecDequantF32(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                       float* w, cudaStream_t stream);

}  // namespace pmpd::kernels
