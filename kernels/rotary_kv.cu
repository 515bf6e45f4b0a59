// Rotary and cache-append kernels (contracts in rotary_kv.cuh): one thread per rotated pair or
// cache element.
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/grid_stride.cuh"
#include "kernels/rotary_kv.cuh"

namespace pmpd::kernels {
namespace {

// A cache element from fp32: as is, or rounded to the nearest fp16.
__device__ __forceinline__ float ToCache(float v, float*) { return v; }
__device__ __forceinline__ __half ToCache(float v, __half*) { return __float2half_rn(v); }

// One thread per (token, head, i < head_dim / 2): rotates the pair (i, i + half) together.
__global__ void RotaryKernel(float* __restrict__ x, const int32_t* __restrict__ positions,
                             const float* __restrict__ cos, const float* __restrict__ sin, int n,
                             int heads, int head_dim) {
  const int half = head_dim / 2;
  const int64_t total = static_cast<int64_t>(n) * heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int i = static_cast<int>(idx % half);
    const int64_t th = idx / half;  // token * heads + head
    const int t = static_cast<int>(th / heads);
    float* v = x + th * head_dim;
    const float* c = cos + static_cast<size_t>(positions[t]) * head_dim;
    const float* s = sin + static_cast<size_t>(positions[t]) * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = a * c[i] - b * s[i];
    v[i + half] = b * c[i + half] + a * s[i + half];
  }
}

// One thread per (head row, i < head_dim / 2) over the q heads, then the kv heads: rotates q in
// place, rotates k into the cache, copies v into the cache (both halves per thread).
template <typename T>
__global__ void RotaryKvAppendKernel(float* __restrict__ q, const float* __restrict__ k,
                                     const float* __restrict__ v,
                                     const int32_t* __restrict__ position,
                                     const float* __restrict__ cos, const float* __restrict__ sin,
                                     int heads, int kv_heads, int head_dim, int max_len,
                                     T* __restrict__ k_cache, T* __restrict__ v_cache) {
  const int half = head_dim / 2;
  const int idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= (heads + kv_heads) * half) return;
  const int pos = *position;
  const int row = idx / half, i = idx % half;
  const float* c = cos + static_cast<size_t>(pos) * head_dim;
  const float* s = sin + static_cast<size_t>(pos) * head_dim;
  if (row < heads) {
    float* x = q + static_cast<size_t>(row) * head_dim;
    const float a = x[i], b = x[i + half];
    x[i] = a * c[i] - b * s[i];
    x[i + half] = b * c[i + half] + a * s[i + half];
    return;
  }
  const int h = row - heads;
  const float* kr = k + static_cast<size_t>(h) * head_dim;
  const float* vr = v + static_cast<size_t>(h) * head_dim;
  const size_t at = (static_cast<size_t>(h) * max_len + pos) * head_dim;
  const float a = kr[i], b = kr[i + half];
  k_cache[at + i] = ToCache(a * c[i] - b * s[i], k_cache);
  k_cache[at + i + half] = ToCache(b * c[i + half] + a * s[i + half], k_cache);
  v_cache[at + i] = ToCache(vr[i], v_cache);
  v_cache[at + i + half] = ToCache(vr[i + half], v_cache);
}

// One thread per element of x [n, kv_heads, head_dim].
template <typename T>
__global__ void KvCacheWriteKernel(const float* __restrict__ x,
                                   const int32_t* __restrict__ positions, int n, int kv_heads,
                                   int head_dim, int max_len, T* __restrict__ cache) {
  const int64_t total = static_cast<int64_t>(n) * kv_heads * head_dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(idx % head_dim);
    const int64_t th = idx / head_dim;  // token * kv_heads + head
    const int h = static_cast<int>(th % kv_heads), t = static_cast<int>(th / kv_heads);
    cache[(static_cast<int64_t>(h) * max_len + positions[t]) * head_dim + d] =
        ToCache(x[idx], cache);
  }
}

// One thread per element of positions [0, len) of every head.
__global__ void KvCacheToF32Kernel(const __half* __restrict__ cache, int kv_heads, int len,
                                   int head_dim, int max_len, float* __restrict__ out) {
  const int64_t total = static_cast<int64_t>(kv_heads) * len * head_dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t per_head = static_cast<int64_t>(len) * head_dim;
    const int64_t h = idx / per_head, rest = idx % per_head;
    const int64_t at = h * max_len * head_dim + rest;
    out[at] = __half2float(cache[at]);
  }
}

template <typename T>
void LaunchRotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position,
                          const float* cos, const float* sin, int heads, int kv_heads, int head_dim,
                          int max_len, T* k_cache, T* v_cache, cudaStream_t stream) {
  PMPD_CHECK(head_dim % 2 == 0, "RotaryKvAppend: head_dim must be even");
  const int total = (heads + kv_heads) * (head_dim / 2);
  RotaryKvAppendKernel<T>
      <<<(total + kGridStrideThreads - 1) / kGridStrideThreads, kGridStrideThreads, 0, stream>>>(
          q, k, v, position, cos, sin, heads, kv_heads, head_dim, max_len, k_cache, v_cache);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

template <typename T>
void LaunchKvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                        int max_len, T* cache, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(n) * kv_heads * head_dim;
  if (total == 0) return;
  KvCacheWriteKernel<T><<<GridStrideBlocks(total), kGridStrideThreads, 0, stream>>>(
      x, positions, n, kv_heads, head_dim, max_len, cache);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

void RotaryInPlace(float* x, const int32_t* positions, const float* cos, const float* sin, int n,
                   int heads, int head_dim, cudaStream_t stream) {
  PMPD_CHECK(head_dim % 2 == 0, "RotaryInPlace: even head_dim");
  const int64_t total = static_cast<int64_t>(n) * heads * (head_dim / 2);
  if (total == 0) return;
  RotaryKernel<<<GridStrideBlocks(total), kGridStrideThreads, 0, stream>>>(x, positions, cos, sin,
                                                                           n, heads, head_dim);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position,
                    const float* cos, const float* sin, int heads, int kv_heads, int head_dim,
                    int max_len, float* k_cache, float* v_cache, cudaStream_t stream) {
  LaunchRotaryKvAppend(q, k, v, position, cos, sin, heads, kv_heads, head_dim, max_len, k_cache,
                       v_cache, stream);
}

void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position,
                    const float* cos, const float* sin, int heads, int kv_heads, int head_dim,
                    int max_len, __half* k_cache, __half* v_cache, cudaStream_t stream) {
  LaunchRotaryKvAppend(q, k, v, position, cos, sin, heads, kv_heads, head_dim, max_len, k_cache,
                       v_cache, stream);
}

void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                  int max_len, float* cache, cudaStream_t stream) {
  LaunchKvCacheWrite(x, positions, n, kv_heads, head_dim, max_len, cache, stream);
}

void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim,
                  int max_len, __half* cache, cudaStream_t stream) {
  LaunchKvCacheWrite(x, positions, n, kv_heads, head_dim, max_len, cache, stream);
}

void KvCacheToF32(const __half* cache, int kv_heads, int len, int head_dim, int max_len, float* out,
                  cudaStream_t stream) {
  PMPD_CHECK(len >= 0 && len <= max_len, "KvCacheToF32: 0 <= len <= max_len");
  const int64_t total = static_cast<int64_t>(kv_heads) * len * head_dim;
  if (total == 0) return;
  KvCacheToF32Kernel<<<GridStrideBlocks(total), kGridStrideThreads, 0, stream>>>(
      cache, kv_heads, len, head_dim, max_len, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
