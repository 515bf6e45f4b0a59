#include "hpo/rng.h"

#include "hpo/hpo_check.h"

namespace pmpd::hpo {
namespace {

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

}  // namespace

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& s : s_) s = SplitMix64(state);
}

uint64_t Rng::TrialSeed(uint64_t study_seed, int64_t number) {
  // Two rounds so that neighbouring (seed, number) pairs land far apart.
  uint64_t a = study_seed;
  uint64_t mixed = SplitMix64(a);
  uint64_t b = mixed ^ (static_cast<uint64_t>(number) * 0xd1342543de82ef95ULL);
  return SplitMix64(b);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform01() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

int64_t Rng::UniformInt(int64_t n) {
  PMPD_HPO_CHECK(n > 0, "UniformInt needs n > 0");
  // Rejection keeps every value exactly equally likely.
  const uint64_t un = static_cast<uint64_t>(n);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % un;
  uint64_t x;
  do {
    x = Next();
  } while (x >= limit);
  return static_cast<int64_t>(x % un);
}

}  // namespace pmpd::hpo
