#include "kernels/ref/anyprec_ref.h"

#include <cstring>
#include <vector>

#include "kernels/check.h"
#include "kernels/half.h"

namespace pmpd::kernels {

void AnyprecPackRef(const uint8_t* codes, int N, int K, int P, uint32_t* qweight) {
  PMPD_CHECK(P >= 1 && P <= kAnyprecMaxBits);
  const int kw = AnyprecWordsPerRow(K);
  std::memset(qweight, 0, sizeof(uint32_t) * static_cast<size_t>(P) * N * kw);
  for (int n = 0; n < N; ++n) {
    for (int k = 0; k < K; ++k) {
      int word, bit;
      AnyprecBitPosition(K, k, &word, &bit);
      const int code = codes[static_cast<size_t>(n) * K + k];
      PMPD_DCHECK(code < (1 << P));
      for (int b = 0; b < P; ++b) {
        if ((code >> (P - 1 - b)) & 1)
          qweight[(static_cast<size_t>(b) * N + n) * kw + word] |= 1u << bit;
      }
    }
  }
}

namespace {
// Top-p codes of one row into out[K].
void UnpackRow(const uint32_t* qweight, int N, int K, int p, int n, uint8_t* out) {
  const int kw = AnyprecWordsPerRow(K);
  for (int k = 0; k < K; ++k) {
    int word, bit;
    AnyprecBitPosition(K, k, &word, &bit);
    int code = 0;
    for (int b = 0; b < p; ++b)
      code = code << 1 | ((qweight[(static_cast<size_t>(b) * N + n) * kw + word] >> bit) & 1u);
    out[k] = static_cast<uint8_t>(code);
  }
}
}  // namespace

void AnyprecUnpackRef(const uint32_t* qweight, int N, int K, int P, int p, uint8_t* codes) {
  PMPD_CHECK(p >= 1 && p <= P);
  for (int n = 0; n < N; ++n) UnpackRow(qweight, N, K, p, n, codes + static_cast<size_t>(n) * K);
}

void AnyprecDequantRef(const uint32_t* qweight, const uint16_t* lut, int N, int K, int P, int p,
                       float* w) {
  PMPD_CHECK(p >= 1 && p <= P);
  std::vector<uint8_t> row(K);
  for (int n = 0; n < N; ++n) {
    UnpackRow(qweight, N, K, p, n, row.data());
    const uint16_t* l = lut + (static_cast<size_t>(n) << p);
    for (int k = 0; k < K; ++k) w[static_cast<size_t>(n) * K + k] = F16ToF32(l[row[k]]);
  }
}

void AnyprecGemmRef(const float* x, int M, const uint32_t* qweight, const uint16_t* lut, int N,
                    int K, int P, int p, float* y) {
  PMPD_CHECK(p >= 1 && p <= P);
  std::vector<uint8_t> row(K);
  std::vector<float> table(size_t{1} << p);
  for (int n = 0; n < N; ++n) {
    UnpackRow(qweight, N, K, p, n, row.data());
    const uint16_t* l = lut + (static_cast<size_t>(n) << p);
    for (size_t c = 0; c < table.size(); ++c) table[c] = F16ToF32(l[c]);
    for (int m = 0; m < M; ++m) {
      const float* xm = x + static_cast<size_t>(m) * K;
      double acc = 0;
      for (int k = 0; k < K; ++k) acc += static_cast<double>(xm[k]) * table[row[k]];
      y[static_cast<size_t>(m) * N + n] = static_cast<float>(acc);
    }
  }
}

}  // namespace pmpd::kernels
