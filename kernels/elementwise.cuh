// Elementwise operations of the decode step on the GPU (fp32): embedding rows, the residual add,
// SwiGLU, fp32 -> fp16. Asynchronous on `stream`, allocate nothing, memory-bound (each reads and
// writes its operands once). CPU references: kernels/ref/decode_ops_ref.h.
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// out[t, :] = table[ids[t], :] for t < n. table [vocab, dim]; ids on the device.
void EmbeddingLookup(const float* table, const int32_t* ids, int n, int dim, float* out,
                     cudaStream_t stream);

// y[i] += x[i] for i < n (the residual add).
void AddInPlace(float* y, const float* x, int64_t n, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i] for i < n (SwiGLU; out may alias gate or up).
void SwiGlu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);

// out[i] = x[i] rounded to fp16 (nearest even; beyond the range: +-inf), for i < n: the activations
// of fp16 dense products.
void ConvertF32ToF16(const float* x, __half* out, int64_t n, cudaStream_t stream);

}  // namespace pmpd::kernels
