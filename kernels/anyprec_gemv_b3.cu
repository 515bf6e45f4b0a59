// Instantiations for p = 3 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<3>() { return &GemvForBits<3>; }
template <>
DequantFn GetDequant<3>() { return &DequantForBits<3>; }
}  // namespace pmpd::kernels::anyprec_detail
