#include "hpo/parzen_estimator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "hpo/hpo_check.h"
#include "hpo/param_transform.h"
#include "hpo/truncated_normal.h"

namespace pmpd::hpo {
namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}  // namespace

ParzenEstimator::ParzenEstimator(const SearchSpace& space, std::vector<size_t> dims,
                                 const std::vector<std::vector<double>>& observations,
                                 const std::vector<double>& obs_weights, double prior_weight) {
  PMPD_HPO_CHECK(!dims.empty() && obs_weights.size() == observations.size());
  PMPD_HPO_CHECK(prior_weight > 0.0, "the prior keeps every density positive");
  const size_t n = observations.size();
  const size_t n_kernels = n + 1;

  double total = prior_weight;
  for (double w : obs_weights) {
    PMPD_HPO_CHECK(w >= 0.0);
    total += w;
  }
  weights_.reserve(n_kernels);
  for (double w : obs_weights) weights_.push_back(w / total);
  weights_.push_back(prior_weight / total);
  for (double w : weights_) log_weights_.push_back(std::log(w));

  for (size_t d = 0; d < dims.size(); ++d) {
    PMPD_HPO_CHECK(dims[d] < space.size());
    Dim dim;
    dim.spec = &space.param(dims[d]);
    const ParamSpec& p = *dim.spec;
    if (p.type == ParamType::kCategorical) {
      for (const auto& row : observations) {
        PMPD_HPO_CHECK(row.size() == dims.size());
        dim.choice.push_back(static_cast<int>(row[d]));
      }
      dim.choice.push_back(-1);
      dims_.push_back(std::move(dim));
      continue;
    }
    const KernelLine line = LineOf(p);
    dim.low = line.low;
    dim.high = line.high;
    const double range = line.range();
    for (const auto& row : observations) dim.mus.push_back(ToLine(p, row[d]));

    // Larger gap to the sorted neighbours, the ends of the line counting as neighbours.
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return dim.mus[a] < dim.mus[b]; });
    dim.sigmas.assign(n, 0.0);
    const double min_sigma = range / std::min(100.0, 1.0 + static_cast<double>(n_kernels));
    for (size_t r = 0; r < n; ++r) {
      const double mu = dim.mus[order[r]];
      const double left = r == 0 ? line.low : dim.mus[order[r - 1]];
      const double right = r + 1 == n ? line.high : dim.mus[order[r + 1]];
      const double sigma = std::max(mu - left, right - mu);
      dim.sigmas[order[r]] = std::clamp(sigma, min_sigma, range);
    }
    dim.mus.push_back(0.5 * (line.low + line.high));
    dim.sigmas.push_back(range);
    dims_.push_back(std::move(dim));
  }
}

std::vector<double> ParzenEstimator::Sample(Rng& rng) const {
  // Kernel index by inverse CDF over the weights.
  const double u = rng.Uniform01();
  size_t k = 0;
  double acc = 0.0;
  for (; k + 1 < weights_.size(); ++k) {
    acc += weights_[k];
    if (u < acc) break;
  }
  std::vector<double> x;
  x.reserve(dims_.size());
  for (const Dim& dim : dims_) {
    const double v = rng.Uniform01();
    if (dim.spec->type == ParamType::kCategorical) {
      const int c = dim.choice[k];
      if (c >= 0) {
        x.push_back(c);
      } else {
        const double n = static_cast<double>(dim.spec->choices.size());
        x.push_back(std::min(std::floor(v * n), n - 1.0));
      }
      continue;
    }
    const double t = TruncNormQuantile(v, dim.mus[k], dim.sigmas[k], dim.low, dim.high);
    x.push_back(FromLine(*dim.spec, t));
  }
  return x;
}

double ParzenEstimator::KernelLog(const Dim& dim, size_t k, double x) const {
  const ParamSpec& p = *dim.spec;
  if (p.type == ParamType::kCategorical) {
    const int c = dim.choice[k];
    if (c < 0) return -std::log(static_cast<double>(p.choices.size()));
    return c == static_cast<int>(x) ? 0.0 : -kInf;
  }
  if (p.discrete()) {
    const auto [lo, hi] = CellOf(p, x);
    return TruncNormLogMass(lo, hi, dim.mus[k], dim.sigmas[k], dim.low, dim.high);
  }
  return TruncNormLogPdf(ToLine(p, x), dim.mus[k], dim.sigmas[k], dim.low, dim.high);
}

double ParzenEstimator::LogPdf(const std::vector<double>& x) const {
  PMPD_HPO_CHECK(x.size() == dims_.size());
  std::vector<double> terms(weights_.size());
  double max_term = -kInf;
  for (size_t k = 0; k < weights_.size(); ++k) {
    double t = log_weights_[k];
    for (size_t d = 0; d < dims_.size() && t > -kInf; ++d) t += KernelLog(dims_[d], k, x[d]);
    terms[k] = t;
    max_term = std::max(max_term, t);
  }
  if (max_term == -kInf) return -kInf;
  double sum = 0.0;
  for (double t : terms) sum += std::exp(t - max_term);
  return max_term + std::log(sum);
}

std::vector<double> ParzenEstimator::CategoricalProbabilities(size_t d) const {
  const Dim& dim = dims_[d];
  PMPD_HPO_CHECK(dim.spec->type == ParamType::kCategorical);
  const size_t n_choices = dim.spec->choices.size();
  std::vector<double> p(n_choices, weights_.back() / static_cast<double>(n_choices));
  for (size_t k = 0; k + 1 < weights_.size(); ++k) p[dim.choice[k]] += weights_[k];
  return p;
}

}  // namespace pmpd::hpo
