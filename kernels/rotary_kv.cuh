// Rotary position embedding and the KV-cache append on the GPU (fp32 math; fp32 or fp16 caches).
// Asynchronous on `stream`, allocate nothing, memory-bound. CPU references:
// kernels/ref/decode_ops_ref.h (an fp16 cache holds the reference's values rounded to fp16).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// Rotary embedding, rotate-half convention, in place on x [n, heads, head_dim]: token t uses row
// positions[t] of cos/sin [max_pos, head_dim]; x' = x * cos + rotate_half(x) * sin.
void RotaryInPlace(float* x, const int32_t* positions, const float* cos, const float* sin, int n,
                   int heads, int head_dim, cudaStream_t stream);

// The decode step's rotary + cache append in one launch (one token; its position read from device
// memory, for CUDA graphs): q [heads, hd] rotated in place; k [kv_heads, hd] rotated and written to
// k_cache[h, *position, :]; v written to v_cache[h, *position, :]. Same math as RotaryInPlace and
// KvCacheWrite (their references compose to this one).
void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position,
                    const float* cos, const float* sin, int heads, int kv_heads, int head_dim,
                    int max_len, float* k_cache, float* v_cache, cudaStream_t stream);
// The same into an fp16 cache: the fp32 values above, rounded to the nearest fp16 when stored.
void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position,
                    const float* cos, const float* sin, int heads, int kv_heads, int head_dim,
                    int max_len, __half* k_cache, __half* v_cache, cudaStream_t stream);

// Appends keys or values to a cache: cache[h, positions[t], :] = x[t, h, :] for t < n, h <
// kv_heads. x [n, kv_heads, head_dim]; cache [kv_heads, max_len, head_dim]; positions on the
// device, < max_len.
void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                  int max_len, float* cache, cudaStream_t stream);
// The same into an fp16 cache (each value rounded to the nearest fp16).
void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                  int max_len, __half* cache, cudaStream_t stream);

// An fp16 cache's positions [0, len) as fp32 in the same layout: out[h, t, :] = cache[h, t, :]
// for h < kv_heads, t < len, both [kv_heads, max_len, head_dim] (out's other positions untouched).
// Exact. For the prefill attention's SGEMMs over an fp16 cache.
void KvCacheToF32(const __half* cache, int kv_heads, int len, int head_dim, int max_len, float* out,
                  cudaStream_t stream);

}  // namespace pmpd::kernels
