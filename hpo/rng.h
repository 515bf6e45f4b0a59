// The random stream of one trial. Every trial draws from its own generator, seeded from the
// study seed and the trial number (never from a stream shared by the study), so a resumed or
// re-run trial sees exactly the numbers an uninterrupted run gave it.
#pragma once

#include <cstdint>

namespace pmpd::hpo {

// xoshiro256** seeded through SplitMix64: the same sequence on every platform and compiler
// (std::uniform_real_distribution and friends are implementation-defined, so we avoid them).
class Rng {
 public:
  explicit Rng(uint64_t seed);

  // The seed of trial `number` of a study seeded with `study_seed`. O(1).
  static uint64_t TrialSeed(uint64_t study_seed, int64_t number);

  uint64_t Next();
  // Uniform in [0, 1) with 53 random bits.
  double Uniform01();
  // Uniform integer in [0, n); n > 0.
  int64_t UniformInt(int64_t n);

 private:
  uint64_t s_[4];
};

}  // namespace pmpd::hpo
