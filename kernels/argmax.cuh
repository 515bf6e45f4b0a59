// Row argmax on the GPU (greedy decoding on the device). CPU reference:
// kernels/ref/decode_ops_ref.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// out[r] = index of the largest x[r, :] (lowest index on ties), for r < rows.
void ArgmaxRows(const float* x, int rows, int cols, int32_t* out, cudaStream_t stream);

}  // namespace pmpd::kernels
