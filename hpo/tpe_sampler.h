// Tree-structured Parzen Estimator with the defaults of Optuna's TPESampler (Bergstra et al. 2011;
// Watanabe 2023, "Tree-structured Parzen estimator: understanding its algorithm components").
//
// For a new trial, once n_startup_trials trials are finished (complete or pruned; until then the
// trial is drawn uniformly):
//   1. rank the trials best first: complete ones by value; then pruned ones, those that reached a
//      later step first, ties by their value at that step (as Optuna does); then, with the
//      constant liar, running and stale ones (as the worst). Failed trials are ignored.
//   2. the first gamma(n) = min(ceil(0.1 n), 25) are "good", the rest "bad"; each group is put
//      back in trial-number order and weighted by DefaultWeights (linear forgetting of all but
//      the newest 25).
//   3. l(x) = Parzen estimator of the good ones, g(x) of the bad ones (parzen_estimator.h), prior
//      weight 1.
//   4. draw n_ei_candidates (24) points from l; the one maximising log l(x) - log g(x) wins (the
//      first on ties).
// Univariate (default): steps 3-4 run per parameter, independently. Multivariate: one estimator
// over all parameters with a shared kernel index, so correlations between parameters are kept.
// Both use the same per-dimension bandwidth rule (Optuna's multivariate mode uses a Scott-like
// bandwidth instead; we keep one rule, the neighbour-gap one, for both).
#pragma once

#include <vector>

#include "hpo/sampler.h"

namespace pmpd::hpo {

struct TpeOptions {
  int n_startup_trials = 10;
  int n_ei_candidates = 24;
  double prior_weight = 1.0;
  bool multivariate = false;
  // Running (and stale) trials count as the worst trials, so parallel workers do not all propose
  // the same point.
  bool constant_liar = false;
};

// min(ceil(0.1 n), 25): the size of the good group out of n ranked trials.
int DefaultGamma(int n);
// Optuna's default_weights: n ones for n < 25, else linspace(1/n, 1, n - 25) then 25 ones.
std::vector<double> DefaultWeights(int n);

// Step 1-2 above: the good and the bad trials, each in trial-number order.
struct TpeSplit {
  std::vector<const FrozenTrial*> below, above;
};
TpeSplit SplitTrials(const std::vector<FrozenTrial>& trials, Direction direction,
                     bool constant_liar);

class TpeSampler : public Sampler {
 public:
  explicit TpeSampler(TpeOptions options = {});

  // O(params * candidates * trials) once past the start-up trials.
  std::vector<double> Sample(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                             Direction direction, Rng& rng) const override;
  nlohmann::json ToJson() const override;
  const TpeOptions& options() const { return options_; }

 private:
  TpeOptions options_;
};

}  // namespace pmpd::hpo
