// Runs an objective over a study with N worker threads until the study has exactly n_trials
// finished trials (complete + pruned; failed trials do not count and are replaced).
#pragma once

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "hpo/study.h"
#include "hpo/trial.h"

namespace pmpd::hpo {

// What an objective sees: the trial's params, and its channel to the pruner.
class TrialContext {
 public:
  TrialContext(Study& study, Trial trial) : study_(study), trial_(std::move(trial)) {}

  const Trial& trial() const { return trial_; }
  int64_t number() const { return trial_.number(); }

  // Records the value at `step` (e.g. the validation loss after epoch `step`).
  absl::Status Report(int64_t step, double value) { return study_.Report(number(), step, value); }
  // True when the pruner says stop: the objective should then `return TrialPruned();`.
  // A journal error here is reported as "do not prune" with a warning, so training goes on.
  bool ShouldPrune();

 private:
  Study& study_;
  Trial trial_;
};

// The objective: the value to minimise/maximise, TrialPruned() after ShouldPrune() said so, or any
// other error, which fails the trial (its message is journaled) and does not stop the study.
// Exceptions thrown by the objective fail the trial the same way.
using Objective = std::function<absl::StatusOr<double>(TrialContext&)>;

// The status an objective returns when it stops because ShouldPrune() said so.
absl::Status TrialPruned();
bool IsTrialPruned(const absl::Status& status);

struct RunOptions {
  int64_t n_trials = 0;  // the study ends with exactly this many finished trials
  int jobs = 1;          // worker threads in this process
  // Stop with an error after this many failed trials in this call (-1: n_trials).
  int64_t max_failed_trials = -1;
  // How long an idle worker waits before asking again while the last trials run elsewhere.
  double poll_interval_s = 0.05;
  // Called (from the worker thread) after each trial this call ran ended.
  std::function<void(const FrozenTrial&)> on_trial_end;
};

// Blocks until the study has n_trials finished trials, counting those already in the journal
// (so a resumed run only runs the missing ones). Other processes may work on the same study at the
// same time. Fails on journal errors or too many failed trials; the first error stops every thread.
absl::Status RunStudy(Study& study, const Objective& objective, const RunOptions& options);
absl::Status RunStudy(Study& study, const Objective& objective, int64_t n_trials, int jobs = 1);

}  // namespace pmpd::hpo
