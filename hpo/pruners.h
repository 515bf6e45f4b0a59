// Pruners: stop a trial early from its intermediate values (e.g. the validation loss after each
// epoch, reported at step k). Both follow Optuna's rules.
//
// Callers report a value and then ask ShouldPrune at every step; the successive-halving rungs are
// derived from those reports (nothing else is journaled), which matches Optuna when every report
// is followed by a check.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "hpo/trial.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

class Pruner {
 public:
  virtual ~Pruner() = default;
  // True when `trial` (running, with the reports of its current attempt) should stop.
  // `trials`: every trial of the study in number order (`trial`'s own entry included). Pure;
  // O(trials) per call.
  virtual bool ShouldPrune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                           Direction direction) const = 0;
  // The settings, as stored in the journal header.
  virtual nlohmann::json ToJson() const = 0;
};

// Never prunes.
class NopPruner : public Pruner {
 public:
  bool ShouldPrune(const std::vector<FrozenTrial>&, const FrozenTrial&, Direction) const override {
    return false;
  }
  nlohmann::json ToJson() const override { return {{"type", "none"}}; }
};

struct MedianPrunerOptions {
  int n_startup_trials = 5;    // no pruning until this many trials are complete
  int64_t n_warmup_steps = 0;  // no pruning of a trial before this step
  int64_t interval_steps = 1;  // check at warmup + k * interval only
  int n_min_trials = 1;  // the median needs this many complete trials with a value at the step
  // Optuna compares the trial's best value over its steps so far with the median; false compares
  // the value at the current step (the same for curves that only improve).
  bool best_so_far = true;
};

// Optuna's MedianPruner: at step k, prune when the trial's value (best so far, by default) is
// worse than the median of the values that complete trials reported at step k. A NaN best value
// prunes; no complete trial with a value at step k never prunes.
class MedianPruner : public Pruner {
 public:
  explicit MedianPruner(MedianPrunerOptions options = {});
  bool ShouldPrune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                   Direction direction) const override;
  nlohmann::json ToJson() const override;

 private:
  MedianPrunerOptions options_;
};

struct SuccessiveHalvingOptions {
  int64_t min_resource = 1;         // steps before the first rung
  int64_t reduction_factor = 4;     // Optuna's default; keeps the top 1/4 at each rung
  int min_early_stopping_rate = 0;  // s: skips the first s rungs
};

// Optuna's SuccessiveHalvingPruner (asynchronous successive halving, ASHA). Rung r sits at step
// min_resource * reduction_factor^(s + r). The value a trial reports at its first step at or past
// a rung is its value there; a trial reaching rung r continues when its value is among the best
// max(1, floor(m / reduction_factor)) of the m values recorded at that rung by all trials (itself
// included). Before reduction_factor trials reached a rung only the best so far continues.
class SuccessiveHalvingPruner : public Pruner {
 public:
  explicit SuccessiveHalvingPruner(SuccessiveHalvingOptions options = {});
  bool ShouldPrune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                   Direction direction) const override;
  nlohmann::json ToJson() const override;

  // The step of rung r.
  int64_t RungStep(int rung) const;

 private:
  SuccessiveHalvingOptions options_;
};

// np.nanpercentile(values, q) with linear interpolation; NaN when no value is a number.
double NanPercentile(std::vector<double> values, double q);

}  // namespace pmpd::hpo
