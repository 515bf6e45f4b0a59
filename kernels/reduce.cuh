// Warp and block reductions shared by the kernels. Every lane of the warp (every thread of the
// block) must call them and gets the result.
#pragma once

#include <cfloat>

namespace pmpd::kernels {

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Block-wide reductions (blockDim.x a multiple of 32, <= 1024); `scratch` is 32 floats of shared
// memory, free for reuse once the call returns (it synchronizes before writing it).
__device__ __forceinline__ float BlockMax(float v, float* scratch) {
  v = WarpMax(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return WarpMax(lane < blockDim.x / 32 ? scratch[lane] : -FLT_MAX);
}

__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  v = WarpSum(v);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  return WarpSum(lane < blockDim.x / 32 ? scratch[lane] : 0.f);
}

}  // namespace pmpd::kernels
