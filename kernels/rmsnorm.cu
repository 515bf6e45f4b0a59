// RMSNorm: one block per row; each thread accumulates a strided partial sum of squares,
// a block reduction (warp shuffles, then shared memory across warps) gives mean(x^2).
// Cost: reads x once, w once per row (cached), writes y once: memory-bound.
#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/pdl.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rmsnorm.cuh"

namespace pmpd::kernels {
namespace {

constexpr int kThreads = 256;

// Finishes a row: block-reduces the threads' partial sums of squares and writes
// y[i] = xr[i] * rsqrt(mean + eps) * w[i] for the same strided elements each thread summed.
__device__ void NormalizeRow(const float* xr, const float* __restrict__ w, float* __restrict__ yr,
                             int dim, float eps, float sum) {
  __shared__ float scratch[32];
  const float scale = rsqrtf(BlockSum(sum, scratch) / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

__global__ void RmsNormKernel(const float* __restrict__ x, const float* __restrict__ w,
                              float* __restrict__ y, int dim, float eps) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  NormalizeRow(xr, w, y + static_cast<size_t>(blockIdx.x) * dim, dim, eps, sum);
}

// The same with the residual add first: each thread adds its strided elements, keeps the sum of
// squares of the new values and writes x back (it reads only its own elements again afterwards).
__global__ void AddRmsNormKernel(float* __restrict__ x, const float* __restrict__ delta,
                                 const float* __restrict__ w, float* __restrict__ y, int dim,
                                 float eps) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  const float* dr = delta + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = xr[i] + dr[i];
    xr[i] = v;
    sum += v * v;
  }
  NormalizeRow(xr, w, y + static_cast<size_t>(blockIdx.x) * dim, dim, eps, sum);
}

// Rows of up to kVecThreads * 4 * kVecPerThread floats with dim % 4 == 0 and 16-byte aligned rows
// (the decode step's case): every load of the row is issued before any is used (float4, unrolled,
// values kept in registers), so a row costs about one memory latency instead of one per strided
// iteration of the loops above (15 us -> a few us for dim 4096 on H100: kernels/NOTES.md).
constexpr int kVecThreads = 1024, kVecPerThread = 4;

template <bool kAdd>
__global__ void __launch_bounds__(kVecThreads)
    RmsNormVecKernel(float* __restrict__ x, const float* __restrict__ delta,
                     const float* __restrict__ w, float* __restrict__ y, int dim, float eps) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  const int n4 = dim / 4;
  float4* xr = reinterpret_cast<float4*>(x + static_cast<size_t>(blockIdx.x) * dim);
  const float4* dr = reinterpret_cast<const float4*>(delta + static_cast<size_t>(blockIdx.x) * dim);
  const float4* w4 = reinterpret_cast<const float4*>(w);
  float4* yr = reinterpret_cast<float4*>(y + static_cast<size_t>(blockIdx.x) * dim);
  float4 v[kVecPerThread], wv[kVecPerThread];
#pragma unroll
  for (int j = 0; j < kVecPerThread; ++j) {
    const int i = threadIdx.x + j * kVecThreads;
    if (i < n4) {
      v[j] = xr[i];
      wv[j] = __ldg(w4 + i);
      if constexpr (kAdd) {
        const float4 d = dr[i];
        v[j].x += d.x, v[j].y += d.y, v[j].z += d.z, v[j].w += d.w;
      }
    }
  }
  float sum = 0.f;
#pragma unroll
  for (int j = 0; j < kVecPerThread; ++j) {
    const int i = threadIdx.x + j * kVecThreads;
    if (i < n4) {
      if constexpr (kAdd) xr[i] = v[j];
      sum += v[j].x * v[j].x + v[j].y * v[j].y + v[j].z * v[j].z + v[j].w * v[j].w;
    }
  }
  __shared__ float scratch[32];
  const float scale = rsqrtf(BlockSum(sum, scratch) / dim + eps);
#pragma unroll
  for (int j = 0; j < kVecPerThread; ++j) {
    const int i = threadIdx.x + j * kVecThreads;
    if (i < n4) {
      yr[i] = make_float4(v[j].x * scale * wv[j].x, v[j].y * scale * wv[j].y,
                          v[j].z * scale * wv[j].z, v[j].w * scale * wv[j].w);
    }
  }
}

bool VecPath(const void* a, const void* b, const void* c, const void* d, int dim) {
  auto aligned = [](const void* p) {
    return p == nullptr || reinterpret_cast<uintptr_t>(p) % 16 == 0;
  };
  return dim % 4 == 0 && dim <= kVecThreads * 4 * kVecPerThread && aligned(a) && aligned(b) &&
         aligned(c) && aligned(d);
}

}  // namespace

void RmsNormF32(const float* x, const float* w, float* y, int rows, int dim, float eps,
                cudaStream_t stream) {
  if (rows == 0) return;
  if (VecPath(x, w, y, nullptr, dim) && x != y) {
    RmsNormVecKernel<false>
        <<<rows, kVecThreads, 0, stream>>>(const_cast<float*>(x), nullptr, w, y, dim, eps);
  } else {
    RmsNormKernel<<<rows, kThreads, 0, stream>>>(x, w, y, dim, eps);
  }
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AddRmsNormF32(float* x, const float* delta, const float* w, float* y, int rows, int dim,
                   float eps, cudaStream_t stream) {
  if (rows == 0) return;
  if (VecPath(x, delta, w, y, dim)) {
    RmsNormVecKernel<true><<<rows, kVecThreads, 0, stream>>>(x, delta, w, y, dim, eps);
  } else {
    AddRmsNormKernel<<<rows, kThreads, 0, stream>>>(x, delta, w, y, dim, eps);
  }
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
