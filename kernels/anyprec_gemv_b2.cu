// Instantiations for p = 2 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<2>() { return &GemvForBits<2>; }
template <>
DequantFn GetDequant<2>() { return &DequantForBits<2>; }
}  // namespace pmpd::kernels::anyprec_detail
