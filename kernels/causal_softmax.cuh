// The softmax of prefill attention on the GPU (fp32). CPU reference: kernels/ref/decode_ops_ref.h.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace pmpd::kernels {

// The softmax of prefill attention, in place on scores s [heads, n, len] (row (h, t) = the scores
// of query t of head h against positions 0..len-1): query t sees positions 0..first_pos + t
// (causal), the rest of its row becomes 0. len = first_pos + n. Softmax in fp32 with max
// subtraction, one block per row; reads and writes each score once.
void CausalSoftmaxRows(float* s, int heads, int n, int first_pos, cudaStream_t stream);

}  // namespace pmpd::kernels
