// The interface of a sampler: given the history of a study, propose the params of a new trial.
#pragma once

#include <vector>

#include "hpo/rng.h"
#include "hpo/search_space.h"
#include "hpo/trial.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

class Sampler {
 public:
  virtual ~Sampler() = default;
  // Internal values (search_space.h) for every parameter of a new trial. `trials`: the study's
  // trials in number order (the new one not among them). Draws only from `rng`, which is the new
  // trial's own stream, so the same history and seed give the same params. Never fails.
  virtual std::vector<double> Sample(const SearchSpace& space,
                                     const std::vector<FrozenTrial>& trials, Direction direction,
                                     Rng& rng) const = 0;
  // The settings, as stored in the journal header.
  virtual nlohmann::json ToJson() const = 0;
};

}  // namespace pmpd::hpo
