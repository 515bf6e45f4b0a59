// Instantiations for p = 6 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<6>() { return &GemvForBits<6>; }
template <>
DequantFn GetDequant<6>() { return &DequantForBits<6>; }
}  // namespace pmpd::kernels::anyprec_detail
