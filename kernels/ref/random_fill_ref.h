// CPU references of kernels/random_fill.cuh: the same values from the same RandomHash (host
// pointers; fp16 as IEEE binary16 bits). The GPU may fuse a multiply-add the host rounds twice,
// so float results agree to an ulp of the range, not bit for bit; the words agree exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmpd::kernels {

void FillRandomWordsRef(uint32_t* p, size_t n, uint64_t seed);
void FillUniformF32Ref(float* p, size_t n, float lo, float hi, uint64_t seed);
void FillUniformF16Ref(uint16_t* p, size_t n, float lo, float hi, uint64_t seed);
void FillGridLutRef(uint16_t* lut, int rows, int bits, float max_abs, uint64_t seed);

}  // namespace pmpd::kernels
