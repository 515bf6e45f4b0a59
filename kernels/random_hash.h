// The counter-based hash behind the random-weight kernels (kernels/random_fill.cuh), usable on the
// host and the device so the CPU reference draws the same values: splitmix64's finalizer over
// (seed, index), so a value depends on its index only, not on the launch configuration.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define PMPD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define PMPD_HOST_DEVICE inline
#endif

namespace pmpd::kernels {

PMPD_HOST_DEVICE uint64_t RandomHash(uint64_t seed, uint64_t i) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Uniform in [0, 1) with 24 random bits (exact in fp32).
PMPD_HOST_DEVICE float RandomUnit(uint64_t seed, uint64_t i) {
  return static_cast<float>(RandomHash(seed, i) >> 40) * (1.f / 16777216.f);
}

}  // namespace pmpd::kernels

#undef PMPD_HOST_DEVICE
