// splitmix64 (Steele, Lea, Flood 2014): the one 64-bit mixer and stream behind our seeded weights,
// prompt cuts and content fingerprints. Stored fingerprints and golden files depend on these exact
// constants.
#pragma once

#include <cstdint>

namespace pmpd::models {

// The finalizer: every input bit affects every output bit.
inline uint64_t SplitMix64Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The next value of the stream whose state is *state (advanced by the golden-ratio increment).
inline uint64_t SplitMix64Next(uint64_t* state) {
  return SplitMix64Mix(*state += 0x9E3779B97F4A7C15ull);
}

// The first value of the stream seeded with x: a hash of x.
inline uint64_t SplitMix64Hash(uint64_t x) { return SplitMix64Mix(x + 0x9E3779B97F4A7C15ull); }

}  // namespace pmpd::models
