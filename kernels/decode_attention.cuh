// Decode attention on the GPU (fp32 math over an fp32 or fp16 cache): one query token per sequence
// over a KV cache with grouped-query heads. CPU reference: DecodeAttentionRef
// (kernels/ref/decode_ops_ref.h).
#pragma once

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// Positions per chunk, and the longest cache the grid covers (one grid row per chunk; CUDA allows
// 65535 rows): about 2.1M positions, far beyond what the fp32 cache of any model fits in memory.
inline constexpr int kDecodeAttentionChunk = 32;
inline constexpr int kDecodeAttentionMaxLen = 65535 * kDecodeAttentionChunk;

// Floats of the workspace DecodeAttention needs for these shapes.
int64_t DecodeAttentionWorkspaceFloats(int heads, int head_dim, int max_len);

// q [heads, hd]; k, v [kv_heads, max_len, hd] holding `*len` valid positions; out [heads, hd]. Head
// h reads kv head h / (heads / kv_heads); softmax in fp32 with max subtraction. The number of valid
// positions is read from device memory when the kernels run (1 <= *len <= max_len), so one captured
// CUDA graph serves every decode step. Split over the positions (flash-decoding): chunks of
// kDecodeAttentionChunk positions are scored in parallel (one block per head and chunk, coalesced
// K/V rows), then one small kernel merges the chunks' softmax partials; the grid is sized for
// max_len and chunks at or past *len exit at once. `workspace` holds
// DecodeAttentionWorkspaceFloats(...) floats on the device. head_dim <= 256,
// max_len <= kDecodeAttentionMaxLen. Reads K and V once. Asynchronous on `stream`, allocates
// nothing.
void DecodeAttention(const float* q, const float* k, const float* v, int heads, int kv_heads,
                     int head_dim, int max_len, const int32_t* len, float* workspace, float* out,
                     cudaStream_t stream);
// The same over an fp16 cache (K and V read as fp16, every product and sum in fp32): half the
// cache bytes.
void DecodeAttention(const float* q, const __half* k, const __half* v, int heads, int kv_heads,
                     int head_dim, int max_len, const int32_t* len, float* workspace, float* out,
                     cudaStream_t stream);

}  // namespace pmpd::kernels
