// Random-weight kernels of CudaEngine::CreateRandom (see cuda_engine.cuh): grid-stride loops over a
// splitmix64 hash of (seed, index).
#include <algorithm>

#include "inference/cuda_engine.cuh"
#include "kernels/cuda_check.cuh"

namespace pmpd::inference::cuda_engine_detail {
namespace {

constexpr int kThreads = 256;

unsigned Blocks(size_t n) {
  return static_cast<unsigned>(std::min<size_t>((n + kThreads - 1) / kThreads, 65535));
}

__device__ __forceinline__ uint64_t Mix(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits.
__device__ __forceinline__ float Unit(uint64_t seed, uint64_t i) {
  return static_cast<float>(Mix(seed, i) >> 40) * (1.f / 16777216.f);
}

__global__ void WordsKernel(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    p[i] = static_cast<uint32_t>(Mix(seed, i) >> 32);
  }
}

template <typename T>
__global__ void UniformKernel(T* p, size_t n, float lo, float hi, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float v = lo + (hi - lo) * Unit(seed, i);
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
    const float a = max_abs * (0.5f + 0.5f * Unit(seed, r));
    lut[i] = __float2half_rn(a * ((2.f * c + 1.f) / levels - 1.f));
  }
}

}  // namespace

void FillRandomWords(uint32_t* p, size_t n, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  WordsKernel<<<Blocks(n), kThreads, 0, stream>>>(p, n, seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillUniformF32(float* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  UniformKernel<float><<<Blocks(n), kThreads, 0, stream>>>(p, n, lo, hi, seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillUniformF16(__half* p, size_t n, float lo, float hi, uint64_t seed, cudaStream_t stream) {
  if (n == 0) return;
  UniformKernel<__half><<<Blocks(n), kThreads, 0, stream>>>(p, n, lo, hi, seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void FillGridLut(__half* lut, int rows, int bits, float max_abs, uint64_t seed,
                 cudaStream_t stream) {
  const size_t n = static_cast<size_t>(rows) << bits;
  if (n == 0) return;
  GridLutKernel<<<Blocks(n), kThreads, 0, stream>>>(lut, rows, bits, max_abs, seed);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::inference::cuda_engine_detail
