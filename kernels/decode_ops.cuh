// The small per-token operations of the decode step on the GPU (fp32). Host launchers only; CPU
// references with the same contracts are in kernels/ref/decode_ops_ref.h. All asynchronous on
// `stream`, allocate nothing, and are memory-bound (each reads and writes its operands once).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// out[t, :] = table[ids[t], :] for t < n. table [vocab, dim]; ids on the device.
void EmbeddingLookup(const float* table, const int32_t* ids, int n, int dim, float* out, cudaStream_t stream);

// y[i] += x[i] for i < n (the residual add).
void AddInPlace(float* y, const float* x, int64_t n, cudaStream_t stream);

// out[i] = silu(gate[i]) * up[i] for i < n (SwiGLU; out may alias gate or up).
void SwiGlu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream);

// Rotary embedding, rotate-half convention, in place on x [n, heads, head_dim]: token t uses row
// positions[t] of cos/sin [max_pos, head_dim]; x' = x * cos + rotate_half(x) * sin.
void RotaryInPlace(float* x, const int32_t* positions, const float* cos, const float* sin, int n, int heads,
                   int head_dim, cudaStream_t stream);

// Decode attention for one query token per sequence over a KV cache with grouped-query heads:
// q [heads, hd]; k, v [kv_heads, max_len, hd] holding `len` valid positions; out [heads, hd].
// Head h reads kv head h / (heads / kv_heads). Softmax in fp32 with max subtraction.
void DecodeAttention(const float* q, const float* k, const float* v, int heads, int kv_heads, int head_dim,
                     int max_len, int len, float* out, cudaStream_t stream);

// The softmax of prefill attention, in place on scores s [heads, n, len] (row (h, t) = the scores
// of query t of head h against positions 0..len-1): query t sees positions 0..first_pos + t (causal),
// the rest of its row becomes 0. len = first_pos + n. Softmax in fp32 with max subtraction, one
// block per row; reads and writes each score once.
void CausalSoftmaxRows(float* s, int heads, int n, int first_pos, cudaStream_t stream);

// out[r] = index of the largest x[r, :] (lowest index on ties), for r < rows.
void ArgmaxRows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream);

// DecodeAttention with the number of valid positions read from device memory when the kernels run
// (1 <= *len <= max_len), so one captured CUDA graph serves every decode step. Split over the
// positions (flash-decoding): chunks of kDecodeAttentionChunk positions are scored in parallel
// (one block per head and chunk, coalesced K/V rows), then one small kernel merges the chunks'
// softmax partials. `workspace` holds DecodeAttentionWorkspaceFloats(...) floats on the device;
// head_dim <= 256. Reads K and V once. Reference: DecodeAttentionRef with len = *len.
inline constexpr int kDecodeAttentionChunk = 32;
int64_t DecodeAttentionWorkspaceFloats(int heads, int head_dim, int max_len);
void DecodeAttentionDeviceLen(const float* q, const float* k, const float* v, int heads, int kv_heads, int head_dim,
                              int max_len, const int32_t* len, float* workspace, float* out, cudaStream_t stream);

// The decode step's rotary + cache append in one launch (one token; its position read from device
// memory, for CUDA graphs): q [heads, hd] rotated in place; k [kv_heads, hd] rotated and written to
// k_cache[h, *position, :]; v written to v_cache[h, *position, :]. Same math as RotaryInPlace and
// KvCacheWrite (their references compose to this one).
void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position, const float* cos,
                    const float* sin, int heads, int kv_heads, int head_dim, int max_len, float* k_cache,
                    float* v_cache, cudaStream_t stream);

// Appends keys or values to a cache: cache[h, positions[t], :] = x[t, h, :] for t < n, h < kv_heads.
// x [n, kv_heads, head_dim]; cache [kv_heads, max_len, head_dim]; positions on the device, < max_len.
void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim, int max_len,
                  float* cache, cudaStream_t stream);

// y[M, N] = x[M, K] * W^T for fp16 weights W [N, K] row-major and fp32 x, y (the fp16 model's
// decode projections and the fp16 lm_head): fp32 accumulation, no fp16 rounding of x. 1 <= M <= 8,
// any N, K. With `overlap_previous` it is a programmatic dependent launch (kernels/pdl.cuh) that
// waits for the preceding kernel before reading x. Reads W once (2 N K bytes): memory-bound.
// Reference: DenseF16GemvRef.
void DenseF16Gemv(const float* x, int M, const __half* w, int N, int K, float* y, cudaStream_t stream,
                  bool overlap_previous = false);

// out[i] = x[i] rounded to fp16 (nearest even; beyond the range: +-inf), for i < n: the activations
// of fp16 dense products.
void ConvertF32ToF16(const float* x, __half* out, int64_t n, cudaStream_t stream);

}  // namespace pmpd::kernels
