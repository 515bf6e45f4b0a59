// Instantiations for p = 7 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<7>() { return &GemvForBits<7>; }
template <>
DequantFn GetDequant<7>() { return &DequantForBits<7>; }
}  // namespace pmpd::kernels::anyprec_detail
