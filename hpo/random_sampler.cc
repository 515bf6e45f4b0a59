#include "hpo/random_sampler.h"

#include <algorithm>
#include <cmath>

#include "hpo/param_transform.h"

namespace pmpd::hpo {

std::vector<double> SampleUniform(const SearchSpace& space, Rng& rng) {
  std::vector<double> x;
  x.reserve(space.size());
  for (const ParamSpec& p : space.params()) {
    const double u = rng.Uniform01();
    if (p.type == ParamType::kCategorical) {
      const double n = static_cast<double>(p.choices.size());
      x.push_back(std::min(std::floor(u * n), n - 1.0));
    } else {
      const KernelLine line = LineOf(p);
      x.push_back(FromLine(p, line.low + u * line.range()));
    }
  }
  return x;
}

std::vector<double> RandomSampler::Sample(const SearchSpace& space,
                                          const std::vector<FrozenTrial>& trials,
                                          Direction direction, Rng& rng) const {
  return SampleUniform(space, rng);
}

}  // namespace pmpd::hpo
