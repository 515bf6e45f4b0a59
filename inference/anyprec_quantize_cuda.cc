#include "inference/anyprec_quantize_cuda.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/half.h"
#include "kernels/ref/anyprec_quantize_ref.h"
#include "kernels/ref/anyprec_ref.h"

#if PMPD_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>

#include "kernels/anyprec_quantize.cuh"
#endif

namespace pmpd::inference {
namespace {

#if PMPD_HAVE_CUDA
absl::StatusOr<models::AnyprecMatrix> Quantize(const float* w, const float* sensitivity, int N,
                                               int K, const models::AnyprecQuantizeOptions& o) {
  if (at::detail::getCUDAHooks().getNumGPUs() <= 0) {
    return absl::FailedPreconditionError("GPU quantization: no CUDA device on this machine");
  }
  const int S = o.seed_bits, P = o.parent_bits;
  const at::Device dev(at::kCUDA, 0);
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream(0).stream();
  auto host = [&](const float* p) {
    return at::from_blob(const_cast<float*>(p), {N, K}, at::kFloat).to(dev);
  };
  at::Tensor dw = host(w);
  at::Tensor df = sensitivity ? host(sensitivity) : at::Tensor();
  // Zeros: with no Lloyd iteration and S == P the reference leaves its zero-filled codes as they
  // are.
  at::Tensor codes = at::zeros({N, K}, at::TensorOptions().dtype(at::kByte).device(dev));
  const int lut_floats = kernels::AnyprecLutFloats(S, P);
  at::Tensor luts = at::empty({N, lut_floats}, at::TensorOptions().dtype(at::kFloat).device(dev));
  // Rows per batch: one thread each, so as many as a quarter of the free memory holds (between
  // 256 MiB and 8 GiB of scratch; capped by the sort's 2^31 elements). With 1 GiB, K = 11008 gave
  // 1500 rows: 12 blocks for 132 SMs.
  size_t free_bytes = 0, total_bytes = 0;
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) free_bytes = size_t{4} << 30;
  const int64_t cap = std::clamp<int64_t>(static_cast<int64_t>(free_bytes / 4), int64_t{256} << 20,
                                          int64_t{8} << 30);
  const size_t per_row = kernels::AnyprecQuantizeScratchBytes(2, K) / 2 + 1;
  int rows = static_cast<int>(
      std::min<int64_t>({N, std::max<int64_t>(1, cap / static_cast<int64_t>(per_row)),
                         ((int64_t{1} << 31) - 1) / K}));
  rows = std::max(rows, 1);
  const size_t scratch_bytes = kernels::AnyprecQuantizeScratchBytes(rows, K);
  at::Tensor scratch = at::empty({static_cast<int64_t>(scratch_bytes)},
                                 at::TensorOptions().dtype(at::kByte).device(dev));
  kernels::AnyprecQuantizeRowsCuda(
      dw.data_ptr<float>(), df.defined() ? df.data_ptr<float>() : nullptr, N, K, S, P,
      o.max_lloyd_iterations, o.seed, rows, scratch.data_ptr(), scratch_bytes,
      codes.data_ptr<uint8_t>(), luts.data_ptr<float>(), stream);
  const int64_t kw = kernels::AnyprecWordsPerRow(K);
  at::Tensor qweight = at::empty({P, N, kw}, at::TensorOptions().dtype(at::kInt).device(dev));
  kernels::AnyprecPackCuda(codes.data_ptr<uint8_t>(), N, K, P,
                           reinterpret_cast<uint32_t*>(qweight.data_ptr<int32_t>()), stream);
  at::Tensor q_host = qweight.cpu();
  at::Tensor lut_host = luts.cpu();
  models::AnyprecMatrix m;
  m.n = N;
  m.k = K;
  m.seed_bits = S;
  m.parent_bits = P;
  const uint32_t* qp = reinterpret_cast<const uint32_t*>(q_host.data_ptr<int32_t>());
  m.qweight.assign(qp, qp + q_host.numel());
  m.luts.resize(P - S + 1);
  const float* lp = lut_host.data_ptr<float>();
  for (int b = S; b <= P; ++b) {
    std::vector<uint16_t>& lut = m.luts[b - S];
    lut.resize(static_cast<size_t>(N) << b);
    for (int r = 0; r < N; ++r) {
      const float* row = lp + static_cast<size_t>(r) * lut_floats + kernels::AnyprecLutOffset(S, b);
      for (int c = 0; c < (1 << b); ++c)
        lut[(static_cast<size_t>(r) << b) + c] = kernels::F32ToF16(row[c]);
    }
  }
  return m;
}
#endif

}  // namespace

absl::StatusOr<models::AnyprecMatrix> QuantizeAnyprecCuda(const float* w, const float* sensitivity,
                                                          int N, int K,
                                                          const models::AnyprecQuantizeOptions& o) {
#if PMPD_HAVE_CUDA
  try {  // LibTorch reports CUDA out-of-memory as an exception: a Status at this boundary
    return Quantize(w, sensitivity, N, K, o);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "GPU quantization of a ", N, "x", K,
        " matrix: ", std::string(e.what()).substr(0, std::string(e.what()).find('\n'))));
  }
#else
  (void)w, (void)sensitivity, (void)N, (void)K, (void)o;
  return absl::UnimplementedError("GPU quantization: this build has no CUDA (nvcc was not found)");
#endif
}

int CudaDeviceCount() {
#if PMPD_HAVE_CUDA
  return at::detail::getCUDAHooks().getNumGPUs();
#else
  return 0;  // LibTorch may see GPUs, but this build has no kernels for them
#endif
}

int64_t CudaPeakReservedBytes() {
#if PMPD_HAVE_CUDA
  if (at::detail::getCUDAHooks().getNumGPUs() <= 0) return 0;
  try {  // throws when this process never initialised CUDA (nothing was reserved)
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(0);
    return stats.reserved_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
        .peak;
  } catch (const std::exception&) {
    return 0;
  }
#else
  return 0;
#endif
}

}  // namespace pmpd::inference
