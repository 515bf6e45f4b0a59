// Dispatch of the any-precision kernels by bit width (instantiations live in anyprec_gemv_b<p>.cu).
#include "kernels/anyprec_gemv.cuh"
#include "kernels/anyprec_gemv_kernel.cuh"
#include "kernels/check.h"

namespace pmpd::kernels {
namespace {
using anyprec_detail::DequantFn;
using anyprec_detail::GemvFn;
using anyprec_detail::GetDequant;
using anyprec_detail::GetGemv;

// Index p - 2.
const GemvFn kGemv[] = {GetGemv<2>(), GetGemv<3>(), GetGemv<4>(), GetGemv<5>(),
                        GetGemv<6>(), GetGemv<7>(), GetGemv<8>()};
const DequantFn kDequant[] = {GetDequant<2>(), GetDequant<3>(), GetDequant<4>(), GetDequant<5>(),
                              GetDequant<6>(), GetDequant<7>(), GetDequant<8>()};
const anyprec_detail::DequantF32Fn kDequantF32[] = {
    anyprec_detail::GetDequantF32<2>(), anyprec_detail::GetDequantF32<3>(),
    anyprec_detail::GetDequantF32<4>(), anyprec_detail::GetDequantF32<5>(),
    anyprec_detail::GetDequantF32<6>(), anyprec_detail::GetDequantF32<7>(),
    anyprec_detail::GetDequantF32<8>()};
}  // namespace

void AnyprecGemv(const float* x, int M, const uint32_t* qweight, const __half* lut, int N, int K,
                 int P, int p, float* y, cudaStream_t stream, AnyprecGemvPath path,
                 bool overlap_previous) {
  PMPD_CHECK(M >= 1 && M <= kAnyprecGemvMaxTokens, "AnyprecGemv: 1..8 tokens");
  PMPD_CHECK(p >= 2 && p <= P && P <= 8, "AnyprecGemv: 2 <= p <= P <= 8");
  if (N == 0) return;
  kGemv[p - 2](x, M, qweight, lut, N, K, P, y, path == AnyprecGemvPath::kGeneric, overlap_previous,
               stream);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AnyprecDequant(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                    __half* w, cudaStream_t stream) {
  PMPD_CHECK(p >= 2 && p <= P && P <= 8, "AnyprecDequant: 2 <= p <= P <= 8");
  if (N == 0 || K == 0) return;
  kDequant[p - 2](qweight, lut, N, K, w, stream);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

void AnyprecDequantF32(const uint32_t* qweight, const __half* lut, int N, int K, int P, int p,
                       float* w, cudaStream_t stream) {
  PMPD_CHECK(p >= 2 && p <= P && P <= 8, "AnyprecDequantF32: 2 <= p <= P <= 8");
  if (N == 0 || K == 0) return;
  kDequantF32[p - 2](qweight, lut, N, K, w, stream);
  PMPD_CUDA_CHECK(cudaGetLastError());
}

}  // namespace pmpd::kernels
