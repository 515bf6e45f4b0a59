// Dispatch of the any-precision kernels by bit width (instantiations live in anyprec_gemv_b<p>.cu).
#include "kernels/anyprec_gemv.cuh"
#include "kernels/anyprec_gemv_kernel.cuh"
#include "kernels/anyprec_gemv_mma_kernel.cuh"
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

size_t AnyprecGemvWorkspaceBytes(int M, int K) {
  PMPD_CHECK(M >= 1 && M <= kAnyprecGemvMaxTokens && K >= 1,
             "AnyprecGemvWorkspaceBytes: 1..8 tokens, K >= 1");
  return anyprec_detail::MmaWorkspaceBytes(M, K);
}

void AnyprecGemv(const float* x, int M, const uint32_t* qweight, const __half* lut, int N, int K,
                 int P, int p, float* y, cudaStream_t stream, AnyprecGemvPath path,
                 bool overlap_previous, void* workspace, size_t workspace_bytes) {
  PMPD_CHECK(M >= 1 && M <= kAnyprecGemvMaxTokens, "AnyprecGemv: 1..8 tokens");
  PMPD_CHECK(p >= 2 && p <= P && P <= 8, "AnyprecGemv: 2 <= p <= P <= 8");
  if (N == 0) return;
  const bool mma_ok = p <= 4 && workspace != nullptr && anyprec_detail::MmaGemvApplies(M, K) &&
                      reinterpret_cast<uintptr_t>(workspace) % 16 == 0 &&
                      workspace_bytes >= anyprec_detail::MmaWorkspaceBytes(M, K);
  PMPD_CHECK(path != AnyprecGemvPath::kTensorCore || mma_ok,
             "AnyprecGemv: the tensor-core path needs p <= 4, K <= 65536 and a 16-byte aligned "
             "workspace of AnyprecGemvWorkspaceBytes(M, K)");
  if (path == AnyprecGemvPath::kAuto) {
    const bool many = M >= 5 || (M >= 3 && N >= 8192);
    path = mma_ok && many ? AnyprecGemvPath::kTensorCore : AnyprecGemvPath::kCodeWord;
  }
  kGemv[p - 2](x, M, qweight, lut, N, K, P, y, static_cast<int>(path), overlap_previous, workspace,
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
