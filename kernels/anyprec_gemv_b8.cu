// Instantiations for p = 8 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

namespace pmpd::kernels::anyprec_detail {
template <>
GemvFn GetGemv<8>() { return &GemvForBits<8>; }
template <>
DequantFn GetDequant<8>() { return &DequantForBits<8>; }
}  // namespace pmpd::kernels::anyprec_detail
