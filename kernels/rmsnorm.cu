// RMSNorm: one block per row; each thread accumulates a strided partial sum of squares,
// a block reduction (warp shuffles, then shared memory across warps) gives mean(x^2).
// Cost: reads x once, w once per row (cached), writes y once: memory-bound.
#include "kernels/cuda_check.cuh"
#include "kernels/rmsnorm.cuh"
#include "kernels/pdl.cuh"

namespace pmpd::kernels {
namespace {

constexpr int kThreads = 256;

// Finishes a row: block-reduces the threads' partial sums of squares and writes
// y[i] = xr[i] * rsqrt(mean + eps) * w[i] for the same strided elements each thread summed.
__device__ void NormalizeRow(const float* xr, const float* __restrict__ w, float* __restrict__ yr, int dim, float eps,
                             float sum) {
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  __shared__ float warp_sums[kThreads / 32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = sum;
  __syncthreads();
  if (warp == 0) {
    sum = lane < kThreads / 32 ? warp_sums[lane] : 0.f;
    for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    if (lane == 0) warp_sums[0] = sum;
  }
  __syncthreads();
  const float scale = rsqrtf(warp_sums[0] / dim + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) yr[i] = xr[i] * scale * w[i];
}

__global__ void RmsNormKernel(const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
                              int dim, float eps) {
  TriggerDependents();  // a following GEMV may start its weight loads (kernels/pdl.cuh)
  const float* xr = x + static_cast<size_t>(blockIdx.x) * dim;
  float sum = 0.f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) sum += xr[i] * xr[i];
  NormalizeRow(xr, w, y + static_cast<size_t>(blockIdx.x) * dim, dim, eps, sum);
}

// The same with the residual add first: each thread adds its strided elements, keeps the sum of
// squares of the new values and writes x back (it reads only its own elements again afterwards).
__global__ void AddRmsNormKernel(float* __restrict__ x, const float* __restrict__ delta, const float* __restrict__ w,
                                 float* __restrict__ y, int dim, float eps) {
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

}  // namespace

void RmsNormF32(const float* x, const float* w, float* y, int rows, int dim, float eps,
                cudaStream_t stream) {
  if (rows == 0) return;
  RmsNormKernel<<<rows, kThreads, 0, stream>>>(x, w, y, dim, eps);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AddRmsNormF32(float* x, const float* delta, const float* w, float* y, int rows, int dim, float eps,
                   cudaStream_t stream) {
  if (rows == 0) return;
  AddRmsNormKernel<<<rows, kThreads, 0, stream>>>(x, delta, w, y, dim, eps);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
