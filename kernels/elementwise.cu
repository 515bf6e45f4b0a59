// Elementwise kernels (contracts in elementwise.cuh): grid-stride loops, one block per row for
// the embedding.
#include <cfloat>
#include <cstdint>

#include "kernels/cuda_check.cuh"
#include "kernels/elementwise.cuh"
#include "kernels/grid_stride.cuh"
#include "kernels/pdl.cuh"

namespace pmpd::kernels {
namespace {

__global__ void EmbeddingKernel(const float* __restrict__ table, const int32_t* __restrict__ ids,
                                int dim, float* __restrict__ out) {
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

__global__ void ConvertF32ToF16Kernel(const float* __restrict__ x, __half* __restrict__ out,
                                      int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half_rn(x[i]);
  }
}

}  // namespace

void EmbeddingLookup(const float* table, const int32_t* ids, int n, int dim, float* out,
                     cudaStream_t stream) {
  if (n == 0) return;
  EmbeddingKernel<<<n, kGridStrideThreads, 0, stream>>>(table, ids, dim, out);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AddInPlace(float* y, const float* x, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  AddKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(y, x, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void SwiGlu(const float* gate, const float* up, float* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  SwiGluKernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(gate, up, out, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void ConvertF32ToF16(const float* x, __half* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  ConvertF32ToF16Kernel<<<GridStrideBlocks(n), kGridStrideThreads, 0, stream>>>(x, out, n);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
