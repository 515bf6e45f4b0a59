// Instantiations for p = 4 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<4>() { return &GemvForBits<4>; }
template <>
DequantFn GetDequant<4>() { return &DequantForBits<4>; }
}  // namespace pmpd::kernels::anyprec_detail
