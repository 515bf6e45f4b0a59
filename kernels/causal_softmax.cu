// Causal softmax (contract in causal_softmax.cuh): one block per row, block reductions for the max
// and the sum.
#include <cfloat>
#include <cstdint>

#include "kernels/causal_softmax.cuh"
#include "kernels/check.h"
#include "kernels/cuda_check.cuh"
#include "kernels/reduce.cuh"

namespace pmpd::kernels {
namespace {

constexpr int kThreads = 256;  // per row

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
  for (int j = threadIdx.x; j < len; j += blockDim.x)
    row[j] = j < valid ? __expf(row[j] - mx) * inv : 0.f;
}

}  // namespace

void CausalSoftmaxRows(float* s, int heads, int n, int first_pos, cudaStream_t stream) {
  PMPD_CHECK(heads >= 1 && n >= 1 && first_pos >= 0, "CausalSoftmaxRows: bad shape");
  CausalSoftmaxKernel<<<heads * n, kThreads, 0, stream>>>(s, n, first_pos);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
