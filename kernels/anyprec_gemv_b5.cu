// Instantiations for p = 5 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<5>() { return &GemvForBits<5>; }
template <>
DequantFn GetDequant<5>() { return &DequantForBits<5>; }
}  // namespace pmpd::kernels::anyprec_detail
