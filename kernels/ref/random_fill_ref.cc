#include "kernels/ref/random_fill_ref.h"

#include "kernels/half.h"
#include "kernels/random_hash.h"

namespace pmpd::kernels {

void FillRandomWordsRef(uint32_t* p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint32_t>(RandomHash(seed, i) >> 32);
}

void FillUniformF32Ref(float* p, size_t n, float lo, float hi, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = lo + (hi - lo) * RandomUnit(seed, i);
}

void FillUniformF16Ref(uint16_t* p, size_t n, float lo, float hi, uint64_t seed) {
  for (size_t i = 0; i < n; ++i) p[i] = F32ToF16(lo + (hi - lo) * RandomUnit(seed, i));
}

void FillGridLutRef(uint16_t* lut, int rows, int bits, float max_abs, uint64_t seed) {
  const float levels = static_cast<float>(1 << bits);
  for (int r = 0; r < rows; ++r) {
    const float a = max_abs * (0.5f + 0.5f * RandomUnit(seed, static_cast<uint64_t>(r)));
    for (int c = 0; c < (1 << bits); ++c) {
      lut[(static_cast<size_t>(r) << bits) + c] = F32ToF16(a * ((2.f * c + 1.f) / levels - 1.f));
    }
  }
}

}  // namespace pmpd::kernels
