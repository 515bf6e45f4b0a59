// The Parzen estimator of TPE: l(x) over the good trials or g(x) over the bad ones, as a mixture
// with one kernel per observation plus one prior kernel.
//
//   mixture weights  w_i = obs_weight_i / W (observations, in trial order),  w_prior = prior / W,
//                    W = sum(obs_weight) + prior
//   float/int dim    truncated normal on the parameter's line (param_transform.h);
//                    observation kernel: mu = position of the value, sigma = the larger gap to its
//                    neighbours among the sorted observed mus with the line's ends as outer
//                    neighbours, clipped to [range / min(100, 1 + n_kernels), range] where
//                    n_kernels = observations + 1 (the prior);
//                    prior kernel: mu = centre of the line, sigma = range.
//                    Grid values are scored by the mass of their cell, continuous ones by density.
//   categorical dim  observation kernel: all mass on the observed choice; prior: uniform. Summed
//                    over the mixture this is the smoothed count
//                    p(c) = (sum of weights of observations of c + prior / n_choices) / W.
//   several dims     one kernel index shared by all dims (multivariate TPE):
//                    log p(x) = logsumexp_k (log w_k + sum_d log kernel_kd(x_d)).
// One dimension gives the univariate estimator.
#pragma once

#include <cstddef>
#include <vector>

#include "hpo/rng.h"
#include "hpo/search_space.h"

namespace pmpd::hpo {

class ParzenEstimator {
 public:
  // `dims`: indices into `space`; `observations[i]`: internal values of those dims for the i-th
  // observation (rows in trial order); `obs_weights`: one non-negative weight per row.
  // O(dims * n log n).
  ParzenEstimator(const SearchSpace& space, std::vector<size_t> dims,
                  const std::vector<std::vector<double>>& observations,
                  const std::vector<double>& obs_weights, double prior_weight);

  size_t n_kernels() const { return weights_.size(); }  // observations + 1; the prior is last
  // Normalised mixture weights, the prior's last.
  const std::vector<double>& weights() const { return weights_; }
  // Kernel centres and widths of float/int dim d (an index into dims), on the parameter's line.
  const std::vector<double>& mus(size_t d) const { return dims_[d].mus; }
  const std::vector<double>& sigmas(size_t d) const { return dims_[d].sigmas; }

  // One draw: internal values of the dims. Consumes 1 + dims.size() uniforms of `rng`.
  std::vector<double> Sample(Rng& rng) const;
  // log p(x) for internal values x of the dims (a log-probability for grid and categorical dims,
  // a log-density on the line for continuous ones). O(n_kernels * dims).
  double LogPdf(const std::vector<double>& x) const;
  // The smoothed probability of every choice of categorical dim d (univariate view).
  std::vector<double> CategoricalProbabilities(size_t d) const;

 private:
  struct Dim {
    const ParamSpec* spec = nullptr;
    double low = 0.0, high = 0.0;  // the line
    std::vector<double> mus, sigmas;
    std::vector<int> choice;  // categorical: the observed choice per kernel, -1 for the prior
  };
  double KernelLog(const Dim& dim, size_t k, double x) const;

  std::vector<Dim> dims_;
  std::vector<double> weights_;
  std::vector<double> log_weights_;
};

}  // namespace pmpd::hpo
