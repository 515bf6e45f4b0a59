// Random search: every parameter uniform on its line (param_transform.h), i.e. uniform floats,
// log-uniform log-scale values, every grid value equally likely, every choice equally likely.
#pragma once

#include <vector>

#include "hpo/sampler.h"

namespace pmpd::hpo {

// One uniform draw of every parameter; consumes one uniform per parameter.
std::vector<double> SampleUniform(const SearchSpace& space, Rng& rng);

class RandomSampler : public Sampler {
 public:
  std::vector<double> Sample(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                             Direction direction, Rng& rng) const override;
  nlohmann::json ToJson() const override { return {{"type", "random"}}; }
};

}  // namespace pmpd::hpo
