// Random-weight kernels (contracts in random_fill.cuh): grid-stride loops over RandomHash(seed,
// index).
#include "kernels/cuda_check.cuh"
#include "kernels/grid_stride.cuh"
#include "kernels/random_fill.cuh"
#include "kernels/random_hash.h"

namespace pmpd::kernels {
namespace {

__global__ void WordsKernel(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    p[i] = static_cast<uint32_t>(RandomHash(seed, i) >> 32);
  }
}

template <typename T>
__global__ void UniformKernel(T* p, size_t n, float lo, float hi, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float v = lo + (hi - lo) * RandomUnit(seed, i);
    if constexpr (sizeof(T) == 2) {
      p[i] = __float2half_rn(v);
    } else {
      p[i] = v;
    }
  }
}

__global__ void GridLutKernel(__half* lut, int rows, int bits, float max_abs, uint64_t seed) {
  const size_t n = static_cast<size_t>(rows) << bits;
  const float levels = static_cast<float>(1 << bits);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t r = i >> bits;
    const int c = static_cast<int>(i & ((size_t{1} << bits) - 1));
    const float a = max_abs * (0.5f + 0.5f * RandomUnit(seed, r));
    lut[i] = __float2half_rn(a * ((2.f * c + 1.f) / levels - 1.f));
  }
}

}  // namespace

void FillRandomWords(uint32_t* p, size_t n, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  WordsKernel<<<GridStrideBlocks(static_cast<int64_t>(n)), kGridStrideThreads, 0, stream>>>(p, n,
                                                                                            seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillUniformF32(float* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  UniformKernel<float>
      <<<GridStrideBlocks(static_cast<int64_t>(n)), kGridStrideThreads, 0, stream>>>(p, n, lo, hi,
                                                                                     seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillUniformF16(__half* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  UniformKernel<__half>
      <<<GridStrideBlocks(static_cast<int64_t>(n)), kGridStrideThreads, 0, stream>>>(p, n, lo, hi,
                                                                                     seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillGridLut(__half* lut, int rows, int bits, float max_abs, uint64_t seed,
                 cudaStream_t stream) {
  const size_t n = static_cast<size_t>(rows) << bits;
  if (n == 0) return;
  GridLutKernel<<<GridStrideBlocks(static_cast<int64_t>(n)), kGridStrideThreads, 0, stream>>>(
      lut, rows, bits, max_abs, seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
