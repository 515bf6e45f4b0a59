// CPU references of the decode step's kernels (kernels/elementwise.cuh, rotary_kv.cuh,
// decode_attention.cuh, causal_softmax.cuh, dense_f16_gemv.cuh, argmax.cuh), same contracts (host
// pointers).
#pragma once

#include <cstdint>

namespace pmpd::kernels {

void EmbeddingLookupRef(const float* table, const int32_t* ids, int n, int dim, float* out);
void AddInPlaceRef(float* y, const float* x, int64_t n);
void SwiGluRef(const float* gate, const float* up, float* out, int64_t n);
void RotaryInPlaceRef(float* x, const int32_t* positions, const float* cos, const float* sin, int n,
                      int heads, int head_dim);
// Accumulates in double.
void DecodeAttentionRef(const float* q, const float* k, const float* v, int heads, int kv_heads,
                        int head_dim, int max_len, int len, float* out);
// Accumulates in double.
void CausalSoftmaxRowsRef(float* s, int heads, int n, int first_pos);
// w: fp16 bits [N, K]; accumulates in double.
void DenseF16GemvRef(const float* x, int M, const uint16_t* w, int N, int K, float* y);
void ArgmaxRowsRef(const float* x, int rows, int cols, int32_t* out);
void KvCacheWriteRef(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                     int max_len, float* cache);
// fp16 as IEEE binary16 bits (kernels/half.h).
void ConvertF32ToF16Ref(const float* x, uint16_t* out, int64_t n);

}  // namespace pmpd::kernels
