// Decode-step operations (see decode_ops.cuh for the contracts). Simple, memory-bound kernels:
// grid-stride elementwise loops; one block per head for attention (scores staged in shared memory,
// block reductions for the max and the sum; the length from the host or, inside CUDA graphs, from device
// memory); one block per row for argmax.
#include <cfloat>
#include <cstdint>

#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/decode_ops.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(int64_t n) { return static_cast<unsigned>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535)); }

__global__ void EmbeddingKernel(const float* __restrict__ table, const int32_t* __restrict__ ids, int dim,
                                float* __restrict__ out) {
  const float* src = table + static_cast<size_t>(ids[blockIdx.x]) * dim;
  float* dst = out + static_cast<size_t>(blockIdx.x) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) dst[i] = src[i];
}

__global__ void AddKernel(float* __restrict__ y, const float* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[i] += x[i];
  }
}

__global__ void SwiGluKernel(const float* gate, const float* up, float* out, int64_t n) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    out[i] = g / (1.f + __expf(-g)) * up[i];
  }
}

// One thread per (token, head, i < head_dim / 2): rotates the pair (i, i + half) together.
__global__ void RotaryKernel(float* __restrict__ x, const int32_t* __restrict__ positions, const float* __restrict__ cos,
                             const float* __restrict__ sin, int n, int heads, int head_dim) {
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
__global__ void RotaryKvAppendKernel(float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
                                     const int32_t* __restrict__ position, const float* __restrict__ cos,
                                     const float* __restrict__ sin, int heads, int kv_heads, int head_dim,
                                     int max_len, float* __restrict__ k_cache, float* __restrict__ v_cache) {
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
  k_cache[at + i] = a * c[i] - b * s[i];
  k_cache[at + i + half] = b * c[i + half] + a * s[i + half];
  v_cache[at + i] = vr[i];
  v_cache[at + i + half] = vr[i + half];
}

__global__ void DecodeAttentionKernel(const float* __restrict__ q, const float* __restrict__ k,
                                      const float* __restrict__ v, int group, int head_dim, int max_len,
                                      int len, float scale, float* __restrict__ out) {
  extern __shared__ float probs[];  // [len]
  __shared__ float scratch[32];
  const int h = blockIdx.x, kvh = h / group;
  const float* qh = q + static_cast<size_t>(h) * head_dim;
  const float* kb = k + static_cast<size_t>(kvh) * max_len * head_dim;
  const float* vb = v + static_cast<size_t>(kvh) * max_len * head_dim;
  float local_max = -FLT_MAX;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const float* kj = kb + static_cast<size_t>(j) * head_dim;
    float s = 0.f;
    for (int d = 0; d < head_dim; ++d) s += qh[d] * kj[d];
    s *= scale;
    probs[j] = s;
    local_max = fmaxf(local_max, s);
  }
  const float mx = BlockMax(local_max, scratch);
  float local_sum = 0.f;
  for (int j = threadIdx.x; j < len; j += blockDim.x) {
    const float p = __expf(probs[j] - mx);
    probs[j] = p;
    local_sum += p;
  }
  const float z = BlockSum(local_sum, scratch);
  __syncthreads();
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.f;
    for (int j = 0; j < len; ++j) acc += probs[j] * vb[static_cast<size_t>(j) * head_dim + d];
    out[static_cast<size_t>(h) * head_dim + d] = acc / z;
  }
}

__global__ void CausalSoftmaxKernel(float* __restrict__ s, int n, int first_pos) {
  __shared__ float scratch[32];
  const int len = first_pos + n;
  float* row = s + static_cast<size_t>(blockIdx.x) * len;
  const int valid = first_pos + static_cast<int>(blockIdx.x) % n + 1;
  float local_max = -FLT_MAX;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) local_max = fmaxf(local_max, row[j]);
  const float mx = BlockMax(local_max, scratch);
  float local_sum = 0.f;
  for (int j = threadIdx.x; j < valid; j += blockDim.x) local_sum += __expf(row[j] - mx);
  const float inv = 1.f / BlockSum(local_sum, scratch);
  for (int j = threadIdx.x; j < len; j += blockDim.x) row[j] = j < valid ? __expf(row[j] - mx) * inv : 0.f;
}

// Split-K decode attention, pass 1. Block (h, c) scores positions [c*C, min((c+1)*C, len)) of head
// h: each warp takes every 4th position and computes q.k with lanes over head_dim (coalesced rows,
// q pre-scaled in registers), then the block turns its scores into a local softmax and sums p*V with
// threads over head_dim. Writes (o[0..hd), m, l) of the chunk to the workspace. Chunks at or past
// len (the grid is sized for max_len) exit at once.
constexpr int kSplitWarps = 4;
__global__ void DecodeAttentionPartialKernel(const float* __restrict__ q, const float* __restrict__ k,
                                             const float* __restrict__ v, int group, int head_dim, int max_len,
                                             const int32_t* __restrict__ len_device, float scale, int max_chunks,
                                             float* __restrict__ ws) {
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
  const float* kb = k + (static_cast<size_t>(kvh) * max_len + start) * head_dim;
  const float* vb = v + (static_cast<size_t>(kvh) * max_len + start) * head_dim;
  // Unrolled so a warp has several K rows in flight (one row per iteration was latency-bound).
#pragma unroll 4
  for (int j = warp; j < n; j += kSplitWarps) {
    const float* kj = kb + static_cast<size_t>(j) * head_dim;
    float s = 0.f;
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int d = lane + 32 * i;
      if (d < head_dim) s += qr[i] * kj[d];
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
    for (int j = 0; j < n; ++j) acc += sc[j] * vb[static_cast<size_t>(j) * head_dim + d];
    out[d] = acc;
  }
  if (threadIdx.x == 0) {
    out[head_dim] = stats[0];
    out[head_dim + 1] = stats[1];
  }
}

// Pass 2: out[h] = sum_c e^(m_c - M) o_c / sum_c e^(m_c - M) l_c over the chunks that exist.
__global__ void DecodeAttentionMergeKernel(const float* __restrict__ ws, int head_dim, int max_chunks,
                                           const int32_t* __restrict__ len_device, float* __restrict__ out) {
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

// One thread per element of x [n, kv_heads, head_dim].
__global__ void KvCacheWriteKernel(const float* __restrict__ x, const int32_t* __restrict__ positions, int n,
                                   int kv_heads, int head_dim, int max_len, float* __restrict__ cache) {
  const int64_t total = static_cast<int64_t>(n) * kv_heads * head_dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(idx % head_dim);
    const int64_t th = idx / head_dim;  // token * kv_heads + head
    const int h = static_cast<int>(th % kv_heads), t = static_cast<int>(th / kv_heads);
    cache[(static_cast<int64_t>(h) * max_len + positions[t]) * head_dim + d] = x[idx];
  }
}

__global__ void ConvertF32ToF16Kernel(const float* __restrict__ x, __half* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half_rn(x[i]);
  }
}

__global__ void ArgmaxKernel(const float* __restrict__ x, int cols, int32_t* __restrict__ out) {
  __shared__ float best_v[32];
  __shared__ int best_i[32];
  const float* row = x + static_cast<size_t>(blockIdx.x) * cols;
  float bv = -FLT_MAX;
  int bi = cols;  // larger than any index
  // Each thread visits its elements in increasing index order, so with '>' its first hit of its
  // maximum is its lowest index. float4 loads, unrolled so several are in flight at once (the scalar
  // strided loop was latency-bound: 53 us for 32000 logits on H100).
  if (cols % 4 == 0 && reinterpret_cast<uintptr_t>(row) % 16 == 0) {
    const float4* row4 = reinterpret_cast<const float4*>(row);
#pragma unroll 8
    for (int i = threadIdx.x; i < cols / 4; i += blockDim.x) {
      const float4 v = row4[i];
      if (v.x > bv) bv = v.x, bi = 4 * i;
      if (v.y > bv) bv = v.y, bi = 4 * i + 1;
      if (v.z > bv) bv = v.z, bi = 4 * i + 2;
      if (v.w > bv) bv = v.w, bi = 4 * i + 3;
    }
  } else {
#pragma unroll 8
    for (int c = threadIdx.x; c < cols; c += blockDim.x) {
      if (row[c] > bv) bv = row[c], bi = c;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
    if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
  }
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) best_v[warp] = bv, best_i[warp] = bi;
  __syncthreads();
  if (warp == 0) {
    bv = lane < blockDim.x / 32 ? best_v[lane] : -FLT_MAX;
    bi = lane < blockDim.x / 32 ? best_i[lane] : cols;
    for (int off = 16; off > 0; off >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, off);
      if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    if (lane == 0) out[blockIdx.x] = bi < cols ? bi : 0;
  }
}


// Dense fp16 GEMV: a block of 4 warps owns 4 R rows, warp w rows R w .. R w + R - 1; lane t reads
// 16 bytes (8 weights) of each row per step at k8 = t, t + 32, ... (coalesced 512-byte rows) and
// the matching 8 activations of every token (two float4, shared by the R rows). Unrolled so each
// lane keeps several 16-byte loads in flight. Tail columns (K % 8, or unaligned rows) take the
// scalar loop.
constexpr int kDenseWarps = 4;
template <int M, int R>
__global__ void __launch_bounds__(kDenseWarps * 32)
    DenseF16GemvKernel(const float* __restrict__ x, const __half* __restrict__ w, int N, int K, bool vec,
                       float* __restrict__ y) {
  GridDependencyWait();  // x is the previous kernel's output
  TriggerDependents();
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int n0 = (blockIdx.x * kDenseWarps + warp) * R;
  if (n0 >= N) return;
  const int rows = min(R, N - n0);
  float acc[R][M];
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) acc[r][m] = 0.f;
  }
  const int k8 = vec ? K / 8 : 0;
#pragma unroll 4
  for (int i = lane; i < k8; i += 32) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) {
      wv[r] = __ldg(reinterpret_cast<const uint4*>(w + static_cast<size_t>(n0 + min(r, rows - 1)) * K) + i);
    }
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float4* xp = reinterpret_cast<const float4*>(x + static_cast<size_t>(m) * K) + 2 * i;
      const float4 a = __ldg(xp), b = __ldg(xp + 1);
      const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const __half2* h2 = reinterpret_cast<const __half2*>(&wv[r]);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const float2 f = __half22float2(h2[j]);
          acc[r][m] = fmaf(f.x, xv[2 * j], acc[r][m]);
          acc[r][m] = fmaf(f.y, xv[2 * j + 1], acc[r][m]);
        }
      }
    }
  }
  for (int k = 8 * k8 + lane; k < K; k += 32) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float wk = __half2float(w[static_cast<size_t>(n0 + min(r, rows - 1)) * K + k]);
#pragma unroll
      for (int m = 0; m < M; ++m) acc[r][m] = fmaf(wk, x[static_cast<size_t>(m) * K + k], acc[r][m]);
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
#pragma unroll
    for (int m = 0; m < M; ++m) {
      const float v = WarpSum(acc[r][m]);
      if (lane == 0 && r < rows) y[static_cast<size_t>(m) * N + n0 + r] = v;
    }
  }
}

template <int M>
void LaunchDenseF16Gemv(const float* x, const __half* w, int N, int K, float* y, bool overlap, cudaStream_t stream) {
  constexpr int R = M <= 2 ? 4 : (M <= 4 ? 2 : 1);
  const bool vec = K % 8 == 0 && reinterpret_cast<uintptr_t>(w) % 16 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
  LaunchOverlapped(DenseF16GemvKernel<M, R>, dim3((N + kDenseWarps * R - 1) / (kDenseWarps * R)),
                   dim3(kDenseWarps * 32), stream, overlap, x, w, N, K, vec, y);
}

}  // namespace

void EmbeddingLookup(const float* table, const int32_t* ids, int n, int dim, float* out, cudaStream_t stream) {
  if (n == 0) return;
  EmbeddingKernel<<<n, kThreads, 0, stream>>>(table, ids, dim, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AddInPlace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  AddKernel<<<Blocks(n), kThreads, 0, stream>>>(y, x, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void SwiGlu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  SwiGluKernel<<<Blocks(n), kThreads, 0, stream>>>(gate, up, out, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void RotaryInPlace(float* x, const int32_t* positions, const float* cos, const float* sin, int n, int heads,
                   int head_dim, cudaStream_t stream) {
  PMPD_CHECK(head_dim % 2 == 0, "RotaryInPlace: even head_dim");
  const int64_t total = static_cast<int64_t>(n) * heads * (head_dim / 2);
  if (total == 0) return;
  RotaryKernel<<<Blocks(total), kThreads, 0, stream>>>(x, positions, cos, sin, n, heads, head_dim);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void DecodeAttention(const float* q, const float* k, const float* v, int heads, int kv_heads, int head_dim,
                     int max_len, int len, float* out, cudaStream_t stream) {
  PMPD_CHECK(heads % kv_heads == 0 && len >= 1 && len <= max_len, "DecodeAttention: bad shape");
  const size_t smem = static_cast<size_t>(len) * sizeof(float);
  PMPD_CHECK(smem <= 200 * 1024, "DecodeAttention: context too long for the shared-memory score buffer");
  if (smem > 48 * 1024) {
    PMPD_CUDA_CHECK(cudaFuncSetAttribute(DecodeAttentionKernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem)));
  }
  DecodeAttentionKernel<<<heads, 128, smem, stream>>>(q, k, v, heads / kv_heads, head_dim, max_len, len,
                                                     1.f / sqrtf(static_cast<float>(head_dim)), out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void CausalSoftmaxRows(float* s, int heads, int n, int first_pos, cudaStream_t stream) {
  PMPD_CHECK(heads >= 1 && n >= 1 && first_pos >= 0, "CausalSoftmaxRows: bad shape");
  CausalSoftmaxKernel<<<heads * n, kThreads, 0, stream>>>(s, n, first_pos);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

int64_t DecodeAttentionWorkspaceFloats(int heads, int head_dim, int max_len) {
  const int64_t chunks = (max_len + kDecodeAttentionChunk - 1) / kDecodeAttentionChunk;
  return static_cast<int64_t>(heads) * chunks * (head_dim + 2);
}

void DecodeAttentionDeviceLen(const float* q, const float* k, const float* v, int heads, int kv_heads, int head_dim,
                              int max_len, const int32_t* len, float* workspace, float* out, cudaStream_t stream) {
  PMPD_CHECK(heads % kv_heads == 0 && max_len >= 1 && head_dim <= 256, "DecodeAttentionDeviceLen: bad shape");
  const int chunks = (max_len + kDecodeAttentionChunk - 1) / kDecodeAttentionChunk;
  DecodeAttentionPartialKernel<<<dim3(heads, chunks), 32 * kSplitWarps, 0, stream>>>(
      q, k, v, heads / kv_heads, head_dim, max_len, len, 1.f / sqrtf(static_cast<float>(head_dim)), chunks, workspace);
  PMPD_CUDA_CHECK(cudaGetLastError());
  DecodeAttentionMergeKernel<<<heads, 128, 0, stream>>>(workspace, head_dim, chunks, len, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void RotaryKvAppend(float* q, const float* k, const float* v, const int32_t* position, const float* cos,
                    const float* sin, int heads, int kv_heads, int head_dim, int max_len, float* k_cache,
                    float* v_cache, cudaStream_t stream) {
  PMPD_CHECK(head_dim % 2 == 0, "RotaryKvAppend: head_dim must be even");
  const int total = (heads + kv_heads) * (head_dim / 2);
  RotaryKvAppendKernel<<<(total + kThreads - 1) / kThreads, kThreads, 0, stream>>>(
      q, k, v, position, cos, sin, heads, kv_heads, head_dim, max_len, k_cache, v_cache);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void KvCacheWrite(const float* x, const int32_t* positions, int n, int kv_heads, int head_dim, int max_len,
                  float* cache, cudaStream_t stream) {
  const int64_t total = static_cast<int64_t>(n) * kv_heads * head_dim;
  if (total == 0) return;
  KvCacheWriteKernel<<<Blocks(total), kThreads, 0, stream>>>(x, positions, n, kv_heads, head_dim, max_len, cache);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void DenseF16Gemv(const float* x, int M, const __half* w, int N, int K, float* y, cudaStream_t stream,
                  bool overlap_previous) {
  PMPD_CHECK(M >= 1 && M <= 8 && N >= 0 && K >= 0, "DenseF16Gemv: 1 <= M <= 8");
  if (N == 0) return;
  switch (M) {
    case 1: LaunchDenseF16Gemv<1>(x, w, N, K, y, overlap_previous, stream); break;
    case 2: LaunchDenseF16Gemv<2>(x, w, N, K, y, overlap_previous, stream); break;
    case 3: LaunchDenseF16Gemv<3>(x, w, N, K, y, overlap_previous, stream); break;
    case 4: LaunchDenseF16Gemv<4>(x, w, N, K, y, overlap_previous, stream); break;
    case 5: LaunchDenseF16Gemv<5>(x, w, N, K, y, overlap_previous, stream); break;
    case 6: LaunchDenseF16Gemv<6>(x, w, N, K, y, overlap_previous, stream); break;
    case 7: LaunchDenseF16Gemv<7>(x, w, N, K, y, overlap_previous, stream); break;
    default: LaunchDenseF16Gemv<8>(x, w, N, K, y, overlap_previous, stream); break;
  }
}

void ConvertF32ToF16(const float* x, __half* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ConvertF32ToF16Kernel<<<Blocks(n), kThreads, 0, stream>>>(x, out, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void ArgmaxRows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream) {
  if (rows == 0) return;
  ArgmaxKernel<<<rows, 1024, 0, stream>>>(x, cols, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
