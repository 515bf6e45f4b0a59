#include "hpo/param_importance.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hpo/param_transform.h"

namespace pmpd::hpo {
namespace {

constexpr int kMinTrials = 10;

// Mean ranks (1-based) of `y`, ties sharing the mean of their ranks.
std::vector<double> Ranks(const std::vector<double>& y) {
  std::vector<size_t> order(y.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return y[a] < y[b]; });
  std::vector<double> rank(y.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && y[order[j + 1]] == y[order[i]]) ++j;
    const double mean_rank = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) rank[order[k]] = mean_rank;
    i = j + 1;
  }
  return rank;
}

// Bin index of each trial for parameter p (see the header).
std::vector<int> Bins(const ParamSpec& p, const std::vector<double>& x) {
  const size_t n = x.size();
  std::vector<int> bin(n);
  if (p.type == ParamType::kCategorical) {
    for (size_t i = 0; i < n; ++i) bin[i] = static_cast<int>(x[i]);
    return bin;
  }
  const int b = std::clamp(static_cast<int>(std::floor(std::sqrt(static_cast<double>(n)))), 2, 10);
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t c) { return ToLine(p, x[a]) < ToLine(p, x[c]); });
  for (size_t r = 0; r < n; ++r) {
    const bool tie = r > 0 && x[order[r]] == x[order[r - 1]];
    bin[order[r]] = tie ? bin[order[r - 1]] : static_cast<int>(r * b / n);
  }
  return bin;
}

}  // namespace

absl::StatusOr<std::vector<ParamImportance>> ComputeImportance(
    const SearchSpace& space, const std::vector<FrozenTrial>& trials) {
  std::vector<const FrozenTrial*> complete;
  for (const FrozenTrial& t : trials) {
    if (t.state == TrialState::kComplete) complete.push_back(&t);
  }
  const size_t n = complete.size();
  if (n < static_cast<size_t>(kMinTrials)) {
    return absl::FailedPreconditionError(absl::StrCat("parameter importance needs at least ",
                                                      kMinTrials, " complete trials, have ", n));
  }
  std::vector<double> y;
  for (const FrozenTrial* t : complete) y.push_back(*t->value);
  const std::vector<double> r = Ranks(y);
  const double mean = std::accumulate(r.begin(), r.end(), 0.0) / static_cast<double>(n);
  double ss_total = 0.0;
  for (double v : r) ss_total += (v - mean) * (v - mean);

  std::vector<ParamImportance> out;
  double sum = 0.0;
  for (size_t d = 0; d < space.size(); ++d) {
    const ParamSpec& p = space.param(d);
    std::vector<double> x;
    for (const FrozenTrial* t : complete) x.push_back(t->params[d]);
    const std::vector<int> bin = Bins(p, x);
    std::vector<double> bin_sum, bin_count;
    for (size_t i = 0; i < n; ++i) {
      if (bin[i] >= static_cast<int>(bin_sum.size())) {
        bin_sum.resize(bin[i] + 1, 0.0);
        bin_count.resize(bin[i] + 1, 0.0);
      }
      bin_sum[bin[i]] += r[i];
      bin_count[bin[i]] += 1.0;
    }
    double ss_between = 0.0;
    int groups = 0;
    for (size_t g = 0; g < bin_sum.size(); ++g) {
      if (bin_count[g] == 0.0) continue;
      ++groups;
      const double m = bin_sum[g] / bin_count[g];
      ss_between += bin_count[g] * (m - mean) * (m - mean);
    }
    ParamImportance imp;
    imp.name = p.name;
    imp.bins = groups;
    const double df_within = static_cast<double>(n) - groups;
    if (groups >= 2 && df_within > 0.0 && ss_total > 0.0) {
      const double ms_within = (ss_total - ss_between) / df_within;
      imp.omega2 = std::max(0.0, (ss_between - (groups - 1) * ms_within) / (ss_total + ms_within));
    }
    sum += imp.omega2;
    out.push_back(imp);
  }
  for (ParamImportance& imp : out) imp.share = sum > 0.0 ? imp.omega2 / sum : 0.0;
  return out;
}

std::string ImportanceText(std::vector<ParamImportance> importance) {
  std::stable_sort(
      importance.begin(), importance.end(),
      [](const ParamImportance& a, const ParamImportance& b) { return a.share > b.share; });
  size_t width = 9;
  for (const ParamImportance& imp : importance) width = std::max(width, imp.name.size());
  std::string text =
      absl::StrFormat("%-*s  %7s  %7s  %4s\n", width, "parameter", "share", "omega^2", "bins");
  for (const ParamImportance& imp : importance) {
    absl::StrAppendFormat(&text, "%-*s  %6.1f%%  %7.4f  %4d\n", width, imp.name, 100.0 * imp.share,
                          imp.omega2, imp.bins);
  }
  text +=
      "\nomega^2: one-way ANOVA effect size of each parameter on the rank of the objective over "
      "the\n"
      "complete trials (equal-count bins along each parameter). Main effects only; marginal, so\n"
      "parameters the sampler moved together share credit; noisy with few trials.\n";
  return text;
}

}  // namespace pmpd::hpo
