#include "hpo/tpe_sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <tuple>

#include "hpo/hpo_check.h"
#include "hpo/parzen_estimator.h"
#include "hpo/random_sampler.h"

namespace pmpd::hpo {
namespace {

// Optuna's _get_pruned_trial_score: later steps first, then the value at the last step (NaN last);
// trials that never reported go after all of them.
std::tuple<int64_t, double> PrunedKey(const FrozenTrial& t, Direction direction) {
  if (t.intermediate.empty()) return {1, 0.0};
  const auto& [step, value] = *t.intermediate.rbegin();
  if (std::isnan(value)) return {-step, std::numeric_limits<double>::infinity()};
  return {-step, direction == Direction::kMinimize ? value : -value};
}

bool ByNumber(const FrozenTrial* a, const FrozenTrial* b) { return a->number < b->number; }

std::vector<std::vector<double>> Rows(const std::vector<const FrozenTrial*>& trials,
                                      const std::vector<size_t>& dims) {
  std::vector<std::vector<double>> rows;
  rows.reserve(trials.size());
  for (const FrozenTrial* t : trials) {
    std::vector<double> row;
    row.reserve(dims.size());
    for (size_t d : dims) row.push_back(t->params[d]);
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

int DefaultGamma(int n) {
  return std::min(static_cast<int>(std::ceil(0.1 * static_cast<double>(n))), 25);
}

std::vector<double> DefaultWeights(int n) {
  if (n < 25) return std::vector<double>(std::max(n, 0), 1.0);
  std::vector<double> w;
  w.reserve(n);
  const int ramp = n - 25;
  const double start = 1.0 / static_cast<double>(n);
  // numpy.linspace(start, 1, ramp): both ends included.
  for (int i = 0; i < ramp; ++i) {
    w.push_back(ramp == 1 ? start
                          : start + (1.0 - start) * static_cast<double>(i) /
                                        static_cast<double>(ramp - 1));
  }
  w.insert(w.end(), 25, 1.0);
  return w;
}

TpeSplit SplitTrials(const std::vector<FrozenTrial>& trials, Direction direction,
                     bool constant_liar) {
  std::vector<const FrozenTrial*> complete, pruned, running;
  for (const FrozenTrial& t : trials) {
    switch (t.state) {
      case TrialState::kComplete:
        complete.push_back(&t);
        break;
      case TrialState::kPruned:
        pruned.push_back(&t);
        break;
      case TrialState::kRunning:
      case TrialState::kStale:
        if (constant_liar) running.push_back(&t);
        break;
      case TrialState::kFail:
        break;
    }
  }
  // Like Optuna, gamma counts finished trials only; the liars all land in the bad group.
  size_t n_below = DefaultGamma(static_cast<int>(complete.size() + pruned.size()));
  std::stable_sort(complete.begin(), complete.end(),
                   [&](const FrozenTrial* a, const FrozenTrial* b) {
                     return Better(direction, *a->value, *b->value);
                   });
  std::stable_sort(pruned.begin(), pruned.end(), [&](const FrozenTrial* a, const FrozenTrial* b) {
    return PrunedKey(*a, direction) < PrunedKey(*b, direction);
  });
  TpeSplit split;
  for (const auto* group : {&complete, &pruned}) {
    for (const FrozenTrial* t : *group) {
      if (n_below > 0) {
        split.below.push_back(t);
        --n_below;
      } else {
        split.above.push_back(t);
      }
    }
  }
  split.above.insert(split.above.end(), running.begin(), running.end());
  std::sort(split.below.begin(), split.below.end(), ByNumber);
  std::sort(split.above.begin(), split.above.end(), ByNumber);
  return split;
}

TpeSampler::TpeSampler(TpeOptions options) : options_(options) {
  PMPD_HPO_CHECK(options_.n_startup_trials >= 0 && options_.n_ei_candidates >= 1 &&
                 options_.prior_weight > 0.0);
}

nlohmann::json TpeSampler::ToJson() const {
  return {{"type", "tpe"},
          {"n_startup_trials", options_.n_startup_trials},
          {"n_ei_candidates", options_.n_ei_candidates},
          {"prior_weight", options_.prior_weight},
          {"multivariate", options_.multivariate},
          {"constant_liar", options_.constant_liar}};
}

std::vector<double> TpeSampler::Sample(const SearchSpace& space,
                                       const std::vector<FrozenTrial>& trials, Direction direction,
                                       Rng& rng) const {
  int n_finished = 0;
  for (const FrozenTrial& t : trials) n_finished += t.finished() ? 1 : 0;
  if (n_finished < options_.n_startup_trials) return SampleUniform(space, rng);

  const TpeSplit split = SplitTrials(trials, direction, options_.constant_liar);
  const std::vector<double> w_below = DefaultWeights(static_cast<int>(split.below.size()));
  const std::vector<double> w_above = DefaultWeights(static_cast<int>(split.above.size()));

  // Draws the candidates from l over `dims` and returns the one with the best log l - log g.
  auto best_of = [&](const std::vector<size_t>& dims) {
    const ParzenEstimator l(space, dims, Rows(split.below, dims), w_below, options_.prior_weight);
    const ParzenEstimator g(space, dims, Rows(split.above, dims), w_above, options_.prior_weight);
    std::vector<std::vector<double>> candidates;
    candidates.reserve(options_.n_ei_candidates);
    for (int c = 0; c < options_.n_ei_candidates; ++c) candidates.push_back(l.Sample(rng));
    size_t best = 0;
    double best_score = -std::numeric_limits<double>::infinity();
    for (size_t c = 0; c < candidates.size(); ++c) {
      const double score = l.LogPdf(candidates[c]) - g.LogPdf(candidates[c]);
      if (score > best_score) {
        best_score = score;
        best = c;
      }
    }
    return candidates[best];
  };

  std::vector<double> x(space.size());
  if (options_.multivariate) {
    std::vector<size_t> dims(space.size());
    for (size_t d = 0; d < dims.size(); ++d) dims[d] = d;
    x = best_of(dims);
  } else {
    for (size_t d = 0; d < space.size(); ++d) x[d] = best_of({d})[0];
  }
  return x;
}

}  // namespace pmpd::hpo
