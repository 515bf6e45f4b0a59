// Split-K (flash-decoding) decode attention (contract in decode_attention.cuh).
#include <cuda_fp16.h>

#include <cfloat>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/decode_attention.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace {

// Split-K decode attention, pass 1. Block (h, c) scores positions [c*C, min((c+1)*C, len)) of head
// h: each warp takes every 4th position and computes q.k with lanes over head_dim (coalesced rows,
// q pre-scaled in registers), then the block turns its scores into a local softmax and sums p*V
// with threads over head_dim. Writes (o[0..hd), m, l) of the chunk to the workspace. Chunks at or
// past len (the grid is sized for max_len) exit at once.
constexpr int kSplitWarps = 4;
__device__ __forceinline__ float LoadF(const float* p) { return *p; }
__device__ __forceinline__ float LoadF(const __half* p) { return __half2float(*p); }

template <typename T>
__global__ void DecodeAttentionPartialKernel(const float* __restrict__ q, const T* __restrict__ k,
                                             const T* __restrict__ v, int group, int head_dim,
                                             int max_len, const int32_t* __restrict__ len_device,
                                             float scale, int max_chunks, float* __restrict__ ws) {
  constexpr int C = kDecodeAttentionChunk;
  __shared__ float sc[C];
  __shared__ float stats[2];
  const int len = *len_device;
  const int h = blockIdx.x, chunk = blockIdx.y, start = chunk * C;
  if (start >= len) return;
  const int n = min(C, len - start);
  const int kvh = h / group, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float qr[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int d = lane + 32 * i;
    qr[i] = d < head_dim ? q[static_cast<size_t>(h) * head_dim + d] * scale : 0.f;
  }
  const T* kb = k + (static_cast<size_t>(kvh) * max_len + start) * head_dim;
  const T* vb = v + (static_cast<size_t>(kvh) * max_len + start) * head_dim;
  // Unrolled so a warp has several K rows in flight (one row per iteration was latency-bound).
#pragma unroll 4
  for (int j = warp; j < n; j += kSplitWarps) {
    const T* kj = kb + static_cast<size_t>(j) * head_dim;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int d = lane + 32 * i;
      if (d < head_dim) s += qr[i] * LoadF(kj + d);
    }
    s = WarpSum(s);
    if (lane == 0) sc[j] = s;
  }
  __syncthreads();
  if (warp == 0) {
    float m = -FLT_MAX;
    for (int j = lane; j < n; j += 32) m = fmaxf(m, sc[j]);
    m = WarpMax(m);
    float l = 0.f;
    for (int j = lane; j < n; j += 32) {
      const float p = __expf(sc[j] - m);
      sc[j] = p;
      l += p;
    }
    l = WarpSum(l);
    if (lane == 0) {
      stats[0] = m;
      stats[1] = l;
    }
  }
  __syncthreads();
  float* out = ws + (static_cast<size_t>(h) * max_chunks + chunk) * (head_dim + 2);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
#pragma unroll 16
    for (int j = 0; j < n; ++j) acc += sc[j] * LoadF(vb + static_cast<size_t>(j) * head_dim + d);
    out[d] = acc;
  }
  if (threadIdx.x == 0) {
    out[head_dim] = stats[0];
    out[head_dim + 1] = stats[1];
  }
}

// Pass 2: out[h] = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c over the chunks that exist.
__global__ void DecodeAttentionMergeKernel(const float* __restrict__ ws, int head_dim,
                                           int max_chunks, const int32_t* __restrict__ len_device,
                                           float* __restrict__ out) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  const int h = blockIdx.x;
  const int chunks = (*len_device + kDecodeAttentionChunk - 1) / kDecodeAttentionChunk;
  const float* base = ws + static_cast<size_t>(h) * max_chunks * (head_dim + 2);
  // The chunks' maxima and sums: threads over chunks, then block reductions (a serial loop over the
  // chunks here was a chain of dependent-latency loads).
  __shared__ float scratch[32];
  float m_local = -FLT_MAX;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    m_local = fmaxf(m_local, base[static_cast<size_t>(c) * (head_dim + 2) + head_dim]);
  }
  const float M = BlockMax(m_local, scratch);
  float l_local = 0.f;
  for (int c = threadIdx.x; c < chunks; c += blockDim.x) {
    const float* part = base + static_cast<size_t>(c) * (head_dim + 2);
    l_local += __expf(part[head_dim] - M) * part[head_dim + 1];
  }
  const float L = BlockSum(l_local, scratch);
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
#pragma unroll 8
    for (int c = 0; c < chunks; ++c) {
      const float* part = base + static_cast<size_t>(c) * (head_dim + 2);
      acc += __expf(part[head_dim] - M) * part[d];
    }
    out[static_cast<size_t>(h) * head_dim + d] = acc / L;
  }
}

template <typename T>
void LaunchDecodeAttention(const float* q, const T* k, const T* v, int heads, int kv_heads,
                           int head_dim, int max_len, const int32_t* len, float* workspace,
                           float* out, cudaStream_t stream) {
  PMPD_CHECK(
      heads % kv_heads == 0 && max_len >= 1 && max_len <= kDecodeAttentionMaxLen && head_dim <= 256,
      "DecodeAttention: bad shape");
  const int chunks = (max_len + kDecodeAttentionChunk - 1) / kDecodeAttentionChunk;
  DecodeAttentionPartialKernel<T><<<dim3(heads, chunks), 32 * kSplitWarps, 0, stream>>>(
      q, k, v, heads / kv_heads, head_dim, max_len, len, 1.f / sqrtf(static_cast<float>(head_dim)),
      chunks, workspace);
  PMPD_CUDA_CHECK(cudaGetLastError());
  DecodeAttentionMergeKernel<<<heads, 128, 0, stream>>>(workspace, head_dim, chunks, len, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace

int64_t DecodeAttentionWorkspaceFloats(int heads, int head_dim, int max_len) {
  const int64_t chunks = (max_len + kDecodeAttentionChunk - 1) / kDecodeAttentionChunk;
  return static_cast<int64_t>(heads) * chunks * (head_dim + 2);
}

void DecodeAttention(const float* q, const float* k, const float* v, int heads, int kv_heads,
                     int head_dim, int max_len, const int32_t* len, float* workspace, float* out,
                     cudaStream_t stream) {
  LaunchDecodeAttention(q, k, v, heads, kv_heads, head_dim, max_len, len, workspace, out, stream);
}

void DecodeAttention(const float* q, const __half* k, const __half* v, int heads, int kv_heads,
                     int head_dim, int max_len, const int32_t* len, float* workspace, float* out,
                     cudaStream_t stream) {
  LaunchDecodeAttention(q, k, v, heads, kv_heads, head_dim, max_len, len, workspace, out, stream);
}

}  // namespace pmpd::kernels
