#include "hpo/pruners.h"

#include <gtest/gtest.h>

#include <cmath>

namespace pmpd::hpo {
namespace {

FrozenTrial WithCurve(int64_t number, TrialState state, std::map<int64_t, double> curve) {
  FrozenTrial t;
  t.number = number;
  t.state = state;
  t.intermediate = std::move(curve);
  if (state == TrialState::kComplete) t.value = t.intermediate.rbegin()->second;
  return t;
}

// Five complete trials whose values at step 1 are 1, 2, 3, 4, 5: median 3.
std::vector<FrozenTrial> FiveComplete() {
  std::vector<FrozenTrial> trials;
  for (int i = 0; i < 5; ++i) {
    trials.push_back(
        WithCurve(i, TrialState::kComplete, {{0, 10.0 + i}, {1, 1.0 + i}, {2, 0.5 + i}}));
  }
  return trials;
}

TEST(MedianPrunerTest, PrunesWhenWorseThanTheMedianAtTheStep) {
  const MedianPruner pruner;  // n_startup_trials 5, warmup 0
  std::vector<FrozenTrial> trials = FiveComplete();
  // Step 1: median of 1..5 = 3. Best so far 3.5 > 3 -> prune; 2.9 -> keep.
  trials.push_back(WithCurve(5, TrialState::kRunning, {{0, 10.0}, {1, 3.5}}));
  EXPECT_TRUE(pruner.ShouldPrune(trials, trials.back(), Direction::kMinimize));
  trials.back().intermediate[1] = 2.9;
  EXPECT_FALSE(pruner.ShouldPrune(trials, trials.back(), Direction::kMinimize));
  // Exactly the median is not worse.
  trials.back().intermediate[1] = 3.0;
  EXPECT_FALSE(pruner.ShouldPrune(trials, trials.back(), Direction::kMinimize));
  // Optuna's rule uses the best value so far: 2.0 at step 0 (< median 12 there), then 3.5 at step 1
  // -> best so far 2.0 < 3 -> keep; comparing the current value instead prunes.
  trials.back().intermediate = {{0, 2.0}, {1, 3.5}};
  EXPECT_FALSE(pruner.ShouldPrune(trials, trials.back(), Direction::kMinimize));
  MedianPrunerOptions current;
  current.best_so_far = false;
  EXPECT_TRUE(MedianPruner(current).ShouldPrune(trials, trials.back(), Direction::kMinimize));
  // NaN everywhere prunes.
  trials.back().intermediate = {{1, std::nan("")}};
  EXPECT_TRUE(pruner.ShouldPrune(trials, trials.back(), Direction::kMinimize));
  // Maximize: 3.5 > 3 keeps, 2.5 prunes.
  trials.back().intermediate = {{1, 3.5}};
  EXPECT_FALSE(pruner.ShouldPrune(trials, trials.back(), Direction::kMaximize));
  trials.back().intermediate = {{1, 2.5}};
  EXPECT_TRUE(pruner.ShouldPrune(trials, trials.back(), Direction::kMaximize));
}

TEST(MedianPrunerTest, StartupWarmupAndMissingSteps) {
  std::vector<FrozenTrial> trials = FiveComplete();
  const FrozenTrial bad = WithCurve(5, TrialState::kRunning, {{1, 100.0}});
  trials.push_back(bad);
  MedianPrunerOptions o;
  o.n_startup_trials = 6;  // only 5 complete
  EXPECT_FALSE(MedianPruner(o).ShouldPrune(trials, bad, Direction::kMinimize));
  o = {};
  o.n_warmup_steps = 2;  // step 1 < 2
  EXPECT_FALSE(MedianPruner(o).ShouldPrune(trials, bad, Direction::kMinimize));
  o = {};
  EXPECT_TRUE(MedianPruner(o).ShouldPrune(trials, bad, Direction::kMinimize));
  // No complete trial reported step 7: nothing to compare with.
  const FrozenTrial late = WithCurve(5, TrialState::kRunning, {{7, 100.0}});
  trials.back() = late;
  EXPECT_FALSE(MedianPruner(o).ShouldPrune(trials, late, Direction::kMinimize));
  // Running and pruned trials do not count towards the median: median of the complete ones only.
  trials.back() = bad;
  trials.push_back(WithCurve(6, TrialState::kPruned, {{1, 1000.0}}));
  trials.push_back(WithCurve(7, TrialState::kPruned, {{1, 1000.0}}));
  FrozenTrial mid = WithCurve(8, TrialState::kRunning, {{1, 3.2}});
  trials.push_back(mid);
  EXPECT_TRUE(MedianPruner(o).ShouldPrune(trials, mid, Direction::kMinimize));
}

TEST(MedianPrunerTest, IntervalStepsCheckOncePerInterval) {
  // warmup 0, interval 3: checks at the first report in [0,3), [3,6), ... (Optuna's
  // _is_first_in_interval_step). Reports at 3 and 4: 4 is not the first report in [3, 6).
  std::vector<FrozenTrial> trials;
  for (int i = 0; i < 5; ++i)
    trials.push_back(WithCurve(i, TrialState::kComplete, {{3, 1.0}, {4, 1.0}}));
  MedianPrunerOptions o;
  o.interval_steps = 3;
  const FrozenTrial at3 = WithCurve(5, TrialState::kRunning, {{3, 9.0}});
  const FrozenTrial at4 = WithCurve(5, TrialState::kRunning, {{3, 9.0}, {4, 9.0}});
  EXPECT_TRUE(MedianPruner(o).ShouldPrune(trials, at3, Direction::kMinimize));
  EXPECT_FALSE(MedianPruner(o).ShouldPrune(trials, at4, Direction::kMinimize));
}

TEST(MedianPrunerTest, PercentileMatchesNumpy) {
  // np.nanpercentile([4, 1, nan, 3, 2], 50) = 2.5; ([1, 2, 3, 4], 25) = 1.75.
  EXPECT_EQ(NanPercentile({4, 1, std::nan(""), 3, 2}, 50), 2.5);
  EXPECT_EQ(NanPercentile({1, 2, 3, 4}, 25), 1.75);
  EXPECT_TRUE(std::isnan(NanPercentile({std::nan("")}, 50)));
}

TEST(SuccessiveHalvingPrunerTest, RungsAndPromotion) {
  SuccessiveHalvingOptions o;
  o.min_resource = 1;
  o.reduction_factor = 2;
  const SuccessiveHalvingPruner pruner(o);
  // Rungs at 1 * 2^(0 + r): steps 1, 2, 4, 8.
  EXPECT_EQ(pruner.RungStep(0), 1);
  EXPECT_EQ(pruner.RungStep(3), 8);
  o.min_early_stopping_rate = 1;
  EXPECT_EQ(SuccessiveHalvingPruner(o).RungStep(0), 2);

  // Three other trials reached rung 0 (step 1) with 0.1, 0.2, 0.3 (any state counts).
  std::vector<FrozenTrial> trials = {
      WithCurve(0, TrialState::kComplete, {{0, 1.0}, {1, 0.1}, {2, 0.1}}),
      WithCurve(1, TrialState::kPruned, {{0, 1.0}, {1, 0.2}}),
      WithCurve(2, TrialState::kRunning, {{0, 1.0}, {1, 0.3}})};
  // New trial at step 1 with 0.25: competing [0.1, 0.2, 0.25, 0.3], keep the top 4 / 2 = 2, i.e.
  // value <= sorted[1] = 0.2 -> 0.25 is pruned; 0.15 <= 0.15 (itself the 2nd) -> continues.
  FrozenTrial t = WithCurve(3, TrialState::kRunning, {{0, 1.0}, {1, 0.25}});
  trials.push_back(t);
  EXPECT_TRUE(pruner.ShouldPrune(trials, t, Direction::kMinimize));
  t.intermediate[1] = 0.15;
  trials.back() = t;
  EXPECT_FALSE(pruner.ShouldPrune(trials, t, Direction::kMinimize));
  // Step 0 is before the first rung: never pruned there.
  const FrozenTrial early = WithCurve(4, TrialState::kRunning, {{0, 99.0}});
  EXPECT_FALSE(pruner.ShouldPrune(trials, early, Direction::kMinimize));
  // Rung 0 was decided at step 1; a report at step 1.5 does not exist, at step 2 rung 1 is
  // decided: trial 0 has 0.1 there, competing [0.1, 0.12]: idx = 2/2 - 1 = 0 -> must be the best.
  t.intermediate[2] = 0.12;
  trials.back() = t;
  EXPECT_TRUE(pruner.ShouldPrune(trials, t, Direction::kMinimize));
  t.intermediate[2] = 0.05;
  trials.back() = t;
  EXPECT_FALSE(pruner.ShouldPrune(trials, t, Direction::kMinimize));
  // The first trial to reach a rung is promoted only as the best so far, i.e. always.
  const FrozenTrial first = WithCurve(0, TrialState::kRunning, {{1, 5.0}});
  EXPECT_FALSE(pruner.ShouldPrune({first}, first, Direction::kMinimize));
  // Maximize mirrors: 0.25 against [0.1, 0.2, 0.3] is in the top 2 -> continues; 0.15 is not.
  FrozenTrial m = WithCurve(3, TrialState::kRunning, {{1, 0.25}});
  trials.back() = m;
  EXPECT_FALSE(pruner.ShouldPrune(trials, m, Direction::kMaximize));
  m.intermediate[1] = 0.15;
  trials.back() = m;
  EXPECT_TRUE(pruner.ShouldPrune(trials, m, Direction::kMaximize));
}

}  // namespace
}  // namespace pmpd::hpo
