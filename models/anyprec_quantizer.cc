#include "models/anyprec_quantizer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "kernels/check.h"
#include "kernels/half.h"
#include "kernels/ref/anyprec_quantize_ref.h"
#include "kernels/ref/anyprec_ref.h"

namespace pmpd::models {

AnyprecMatrix QuantizeAnyprec(const float* w, const float* sensitivity, int N, int K,
                              const AnyprecQuantizeOptions& o) {
  PMPD_CHECK(o.seed_bits >= 1 && o.seed_bits <= o.parent_bits &&
             o.parent_bits <= kernels::kAnyprecMaxBits);
  PMPD_CHECK(N > 0 && K > 0);
  const int S = o.seed_bits, P = o.parent_bits;
  AnyprecMatrix m;
  m.n = N;
  m.k = K;
  m.seed_bits = S;
  m.parent_bits = P;
  m.luts.resize(P - S + 1);
  for (int b = S; b <= P; ++b) m.luts[b - S].resize(static_cast<size_t>(N) << b);
  std::vector<uint8_t> codes(static_cast<size_t>(N) * K);
  std::atomic<int> next_row{0};
  auto worker = [&]() {
    std::vector<float> luts(kernels::AnyprecLutFloats(S, P));
    for (int r; (r = next_row.fetch_add(1)) < N;) {
      const size_t off = static_cast<size_t>(r) * K;
      kernels::AnyprecQuantizeRowRef(w + off, sensitivity ? sensitivity + off : nullptr, K, S, P,
                                     o.max_lloyd_iterations, o.seed ^ static_cast<uint64_t>(r),
                                     codes.data() + off, luts.data());
      for (int b = S; b <= P; ++b) {
        const float* lut = luts.data() + kernels::AnyprecLutOffset(S, b);
        for (int c = 0; c < (1 << b); ++c) {
          m.luts[b - S][(static_cast<size_t>(r) << b) + c] = kernels::F32ToF16(lut[c]);
        }
      }
    }
  };
  const int threads = std::max(1, std::min(o.threads, N));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();  // the calling thread works too
  for (auto& t : pool) t.join();
  m.qweight.resize(static_cast<size_t>(P) * N * kernels::AnyprecWordsPerRow(K));
  kernels::AnyprecPackRef(codes.data(), N, K, P, m.qweight.data());
  return m;
}

std::vector<float> QuantizeRtn(const float* w, int N, int K, int bits) {
  std::vector<float> out(static_cast<size_t>(N) * K);
  const int levels = (1 << bits) - 1;
  for (int n = 0; n < N; ++n) {
    const float* row = w + static_cast<size_t>(n) * K;
    const auto [lo_it, hi_it] = std::minmax_element(row, row + K);
    const float lo = *lo_it, hi = *hi_it;
    const float scale = hi > lo ? (hi - lo) / levels : 1.f;
    for (int k = 0; k < K; ++k) {
      const float q = std::round((row[k] - lo) / scale);
      out[static_cast<size_t>(n) * K + k] =
          lo + std::clamp(q, 0.f, static_cast<float>(levels)) * scale;
    }
  }
  return out;
}

}  // namespace pmpd::models
