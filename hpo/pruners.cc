#include "hpo/pruners.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hpo/hpo_check.h"

namespace pmpd::hpo {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The first report at or after `step`: the value a trial has at a rung.
const double* ValueAtOrAfter(const FrozenTrial& t, int64_t step) {
  auto it = t.intermediate.lower_bound(step);
  return it == t.intermediate.end() ? nullptr : &it->second;
}

}  // namespace

double NanPercentile(std::vector<double> values, double q) {
  values.erase(std::remove_if(values.begin(), values.end(), [](double v) { return std::isnan(v); }),
               values.end());
  if (values.empty()) return kNaN;
  std::sort(values.begin(), values.end());
  const double rank = q / 100.0 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

MedianPruner::MedianPruner(MedianPrunerOptions options) : options_(options) {
  PMPD_HPO_CHECK(options_.n_startup_trials >= 0 && options_.n_warmup_steps >= 0 &&
                 options_.interval_steps >= 1 && options_.n_min_trials >= 1);
}

nlohmann::json MedianPruner::ToJson() const {
  return {{"type", "median"},
          {"n_startup_trials", options_.n_startup_trials},
          {"n_warmup_steps", options_.n_warmup_steps},
          {"interval_steps", options_.interval_steps},
          {"n_min_trials", options_.n_min_trials},
          {"best_so_far", options_.best_so_far}};
}

bool MedianPruner::ShouldPrune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                               Direction direction) const {
  std::vector<const FrozenTrial*> complete;
  for (const FrozenTrial& t : trials) {
    if (t.state == TrialState::kComplete) complete.push_back(&t);
  }
  if (complete.empty() || static_cast<int>(complete.size()) < options_.n_startup_trials)
    return false;
  const std::optional<int64_t> step = trial.last_step();
  if (!step.has_value() || *step < options_.n_warmup_steps) return false;
  // Optuna's _is_first_in_interval_step: check once per interval, at the first report in it.
  const int64_t nearest_lower =
      (*step - options_.n_warmup_steps) / options_.interval_steps * options_.interval_steps +
      options_.n_warmup_steps;
  const int64_t second_last =
      trial.intermediate.size() > 1 ? std::prev(trial.intermediate.end(), 2)->first : -1;
  if (second_last >= nearest_lower) return false;

  double mine = trial.intermediate.rbegin()->second;
  if (options_.best_so_far) {
    mine = kNaN;
    for (const auto& [s, v] : trial.intermediate) {
      if (std::isnan(v)) continue;
      if (std::isnan(mine) || Better(direction, v, mine)) mine = v;
    }
  }
  if (std::isnan(mine)) return true;
  std::vector<double> at_step;
  for (const FrozenTrial* t : complete) {
    auto it = t->intermediate.find(*step);
    if (it != t->intermediate.end()) at_step.push_back(it->second);
  }
  if (static_cast<int>(at_step.size()) < options_.n_min_trials) return false;
  const double median = NanPercentile(std::move(at_step), 50.0);
  if (std::isnan(median)) return false;
  return Better(direction, median, mine);
}

SuccessiveHalvingPruner::SuccessiveHalvingPruner(SuccessiveHalvingOptions options)
    : options_(options) {
  PMPD_HPO_CHECK(options_.min_resource >= 1 && options_.reduction_factor >= 2 &&
                 options_.min_early_stopping_rate >= 0);
}

nlohmann::json SuccessiveHalvingPruner::ToJson() const {
  return {{"type", "successive_halving"},
          {"min_resource", options_.min_resource},
          {"reduction_factor", options_.reduction_factor},
          {"min_early_stopping_rate", options_.min_early_stopping_rate}};
}

int64_t SuccessiveHalvingPruner::RungStep(int rung) const {
  int64_t step = options_.min_resource;
  for (int i = 0; i < options_.min_early_stopping_rate + rung; ++i) {
    if (step > std::numeric_limits<int64_t>::max() / options_.reduction_factor) {
      return std::numeric_limits<int64_t>::max();
    }
    step *= options_.reduction_factor;
  }
  return step;
}

bool SuccessiveHalvingPruner::ShouldPrune(const std::vector<FrozenTrial>& trials,
                                          const FrozenTrial& trial, Direction direction) const {
  const std::optional<int64_t> step = trial.last_step();
  if (!step.has_value()) return false;
  const double value = trial.intermediate.rbegin()->second;
  // Only rungs this report is the first to reach are decided now; earlier ones were decided by
  // earlier calls (and the trial survived them).
  for (int rung = 0;; ++rung) {
    const int64_t rung_step = RungStep(rung);
    if (*step < rung_step) return false;
    const double* first = ValueAtOrAfter(trial, rung_step);
    PMPD_HPO_CHECK(first != nullptr);
    if (trial.intermediate.lower_bound(rung_step)->first != *step) continue;  // decided before
    if (std::isnan(value)) return true;
    std::vector<double> competing;
    for (const FrozenTrial& t : trials) {
      if (t.number == trial.number) continue;
      const double* v = ValueAtOrAfter(t, rung_step);
      if (v != nullptr && !std::isnan(*v)) competing.push_back(*v);
    }
    competing.push_back(value);
    // Optuna's _is_trial_promotable_to_next_rung.
    int64_t idx = static_cast<int64_t>(competing.size()) / options_.reduction_factor - 1;
    if (idx < 0) idx = 0;
    std::sort(competing.begin(), competing.end());
    const bool promotable = direction == Direction::kMinimize
                                ? value <= competing[idx]
                                : competing[competing.size() - 1 - idx] <= value;
    if (!promotable) return true;
  }
}

}  // namespace pmpd::hpo
