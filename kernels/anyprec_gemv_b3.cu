// Instantiations for p = 3 bits (one translation unit per bit width; see anyprec_gemv_kernel.cuh).
#include "kernels/anyprec_gemv_kernel.cuh"

PMPD_ANYPREC_DEFINE(3)
