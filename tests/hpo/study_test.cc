// The ask/tell API of a journaled study: enqueue, ownership of trials, heartbeats and staleness,
// exact trial counts of RunStudy.
#include "hpo/study.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "hpo/run_study.h"
#include "tests/hpo/hpo_test_util.h"
#include "tests/test_util.h"

namespace pmpd::hpo {
namespace {

using ::pmpd::hpo::testing::MixedSpace;
using ::pmpd::hpo::testing::OpenOrDie;
using ::pmpd::hpo::testing::Warnings;
using ::pmpd::testing::MakeTempDir;

TEST(StudyTest, AskTellAndReopen) {
  const std::string dir = MakeTempDir("hpo_study");
  const SearchSpace space = MixedSpace();
  StudyOptions options;
  options.seed = 3;
  std::vector<FrozenTrial> before;
  {
    std::unique_ptr<Study> study = OpenOrDie(dir, space, options);
    for (int i = 0; i < 4; ++i) {
      absl::StatusOr<Trial> t = study->Ask();
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_EQ(t->number(), i);
      EXPECT_GE(t->Float("x"), -3.0);
      EXPECT_LE(t->Int("n"), 16);
      const std::string c = t->Choice("c");
      EXPECT_TRUE(c == "a" || c == "b" || c == "c") << c;
      ASSERT_TRUE(study->Tell(t->number(), t->Float("x") * t->Float("x")).ok());
    }
    before = *study->Trials();
  }
  // OpenExisting takes everything from the journal.
  absl::StatusOr<std::unique_ptr<Study>> again = Study::OpenExisting(dir);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->options().seed, 3u);
  EXPECT_EQ((*again)->space().ToJson(), space.ToJson());
  testing::ExpectSameTrials(before, *(*again)->Trials(), "reopened");
  absl::StatusOr<std::optional<FrozenTrial>> best = (*again)->BestTrial();
  ASSERT_TRUE(best.ok() && best->has_value());
  for (const FrozenTrial& t : before) EXPECT_LE(*(*best)->value, *t.value);
  // The next trial after a reopen continues the numbering.
  EXPECT_EQ((*again)->Ask()->number(), 4);
}

TEST(StudyTest, EnqueuedPointsComeFirstOnceEach) {
  const std::string dir = MakeTempDir("hpo_enqueue");
  const SearchSpace space = MixedSpace();
  {
    std::unique_ptr<Study> study = OpenOrDie(dir, space, {});
    ASSERT_TRUE(study->Enqueue({{"x", 0.5}, {"n", 4}, {"c", "b"}}).ok());
    ASSERT_TRUE(study->Enqueue({{"c", "c"}}).ok());  // partial: x and n are sampled
    const absl::Status bad = study->Enqueue({{"x", 7.0}});
    EXPECT_NE(bad.message().find("parameter \"x\": 7.0 is outside [-3, 3]"),
              absl::string_view::npos)
        << bad;
    EXPECT_FALSE(study->Enqueue({{"depth", 1}}).ok());
    absl::StatusOr<Trial> t0 = study->Ask();
    EXPECT_EQ(t0->ParamsJson(), nlohmann::json({{"x", 0.5}, {"n", 4}, {"c", "b"}}));
    ASSERT_TRUE(study->Tell(0, 1.0).ok());
  }
  {
    // Rerunning the same command enqueues the same points again: they are not queued twice.
    std::unique_ptr<Study> study = OpenOrDie(dir, space, {});
    ASSERT_TRUE(study->Enqueue({{"x", 0.5}, {"n", 4}, {"c", "b"}}).ok());
    ASSERT_TRUE(study->Enqueue({{"c", "c"}}).ok());
    absl::StatusOr<Trial> t1 = study->Ask();
    EXPECT_EQ(t1->Choice("c"), "c");
    absl::StatusOr<Trial> t2 = study->Ask();
    const std::vector<FrozenTrial> trials = *study->Trials();
    EXPECT_TRUE(trials[0].enqueued);
    EXPECT_TRUE(trials[1].enqueued);
    EXPECT_FALSE(trials[2].enqueued);
  }
}

TEST(StudyTest, OnlyTheOwningWorkerEndsATrialAndNanFails) {
  const std::string dir = MakeTempDir("hpo_owner");
  const SearchSpace space = MixedSpace();
  Warnings warnings;
  StudyOptions options;
  options.warn = warnings.Sink();
  std::unique_ptr<Study> a = OpenOrDie(dir, space, options);
  std::unique_ptr<Study> b = OpenOrDie(dir, space, options);
  absl::StatusOr<Trial> t = a->Ask();
  EXPECT_TRUE(absl::IsFailedPrecondition(b->Tell(t->number(), 1.0)));
  EXPECT_TRUE(absl::IsFailedPrecondition(b->Report(t->number(), 0, 1.0)));
  ASSERT_TRUE(a->Report(t->number(), 0, 2.0).ok());
  ASSERT_TRUE(a->Report(t->number(), 0, 3.0).ok());  // kept the first, with a warning
  EXPECT_EQ(warnings.Count("step 0 was already reported"), 1);
  EXPECT_TRUE(absl::IsInvalidArgument(a->Report(t->number(), -1, 1.0)));
  ASSERT_TRUE(a->Tell(t->number(), std::nan("")).ok());
  std::vector<FrozenTrial> trials = *b->Trials();
  EXPECT_EQ(trials[0].state, TrialState::kFail);
  EXPECT_EQ(trials[0].intermediate.at(0), 2.0);
  EXPECT_NE(trials[0].message.find("nan"), std::string::npos);
  EXPECT_TRUE(absl::IsFailedPrecondition(a->Tell(t->number(), 1.0)));  // already ended
}

TEST(StudyTest, SilentRemoteWorkersGoStaleAndTheirTrialsRerunWithTheSameParams) {
  const std::string dir = MakeTempDir("hpo_stale");
  const SearchSpace space = MixedSpace();
  Warnings warnings;
  StudyOptions remote;  // a worker on another host that stops sending heartbeats
  remote.host = "other-host";
  remote.heartbeat_interval_s = 0.0;
  remote.warn = warnings.Sink();
  StudyOptions beating = remote;  // another remote worker, alive: it beats every 50 ms
  beating.host = "third-host";
  beating.heartbeat_interval_s = 0.05;
  StudyOptions local;
  local.stale_timeout_s = 1.0;
  local.warn = warnings.Sink();

  std::unique_ptr<Study> r = OpenOrDie(dir, space, remote);
  std::unique_ptr<Study> h = OpenOrDie(dir, space, beating);
  std::unique_ptr<Study> l = OpenOrDie(dir, space, local);
  const Trial lost = *r->Ask();
  const Trial kept = *h->Ask();
  // Within the timeout both remote trials count as running: the local worker gets a new trial.
  EXPECT_EQ(l->Ask()->number(), 2);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  // Past the timeout: trial 0's worker was silent, trial 1's sent heartbeats.
  const Trial rerun = *l->Ask();
  EXPECT_EQ(rerun.number(), lost.number());
  EXPECT_EQ(rerun.attempt(), 2);
  EXPECT_EQ(rerun.values(), lost.values());
  EXPECT_EQ(warnings.Count("trial 0 is stale"), 1);
  EXPECT_EQ(warnings.Count("trial 1 is stale"), 0);
  // The silent worker comes back too late: its result is refused.
  EXPECT_TRUE(absl::IsFailedPrecondition(r->Tell(lost.number(), 1.0)));
  EXPECT_TRUE(h->Tell(kept.number(), 1.0).ok());
  EXPECT_TRUE(l->Tell(rerun.number(), 2.0).ok());
  const std::vector<FrozenTrial> trials = *l->Trials();
  EXPECT_EQ(trials[0].state, TrialState::kComplete);
  EXPECT_EQ(trials[0].attempts, 2);
  EXPECT_EQ(*trials[0].value, 2.0);
}

TEST(StudyTest, ClosedStudyObjectsOfThisProcessAreStaleAtOnce) {
  const std::string dir = MakeTempDir("hpo_closed");
  const SearchSpace space = MixedSpace();
  Warnings warnings;
  StudyOptions options;
  options.warn = warnings.Sink();  // stale_timeout_s stays 60 s: the pid/token check decides
  std::vector<double> values;
  {
    std::unique_ptr<Study> first = OpenOrDie(dir, space, options);
    values = first->Ask()->values();
  }
  std::unique_ptr<Study> second = OpenOrDie(dir, space, options);
  const Trial t = *second->Ask();
  EXPECT_EQ(t.number(), 0);
  EXPECT_EQ(t.values(), values);
  EXPECT_EQ(warnings.Count("was closed"), 1);
}

TEST(StudyTest, RunStudyEndsWithExactlyNFinishedTrials) {
  const SearchSpace space = MixedSpace();
  StudyOptions options;
  options.seed = 1;
  options.pruner.type = PrunerConfig::Type::kMedian;
  options.pruner.median.n_startup_trials = 3;
  std::unique_ptr<Study> study = Study::InMemory(space, options);
  // Every 7th trial fails (not counted, replaced); curves that start high are pruned.
  const Objective objective = [](TrialContext& c) -> absl::StatusOr<double> {
    if (c.number() % 7 == 3) return absl::InternalError("out of memory");
    const double x = c.trial().Float("x");
    for (int step = 0; step < 4; ++step) {
      if (absl::Status s = c.Report(step, x * x + 1.0 / (step + 1)); !s.ok()) return s;
      if (c.ShouldPrune()) return TrialPruned();
    }
    return x * x;
  };
  RunOptions run;
  run.n_trials = 25;
  absl::Status run_status = RunStudy(*study, objective, run);
  ASSERT_TRUE(run_status.ok()) << run_status;
  int complete = 0, pruned = 0, failed = 0;
  const std::vector<FrozenTrial> trials = *study->Trials();
  for (const FrozenTrial& t : trials) {
    complete += t.state == TrialState::kComplete;
    pruned += t.state == TrialState::kPruned;
    failed += t.state == TrialState::kFail;
    if (t.state == TrialState::kPruned) {
      EXPECT_EQ(*t.value, t.intermediate.rbegin()->second);
    }
  }
  std::printf("[ RunStudy ] complete %d, pruned %d, failed %d\n", complete, pruned, failed);
  EXPECT_EQ(complete + pruned, 25);
  EXPECT_GT(pruned, 0);
  EXPECT_GT(failed, 0);
  // Asking for more runs only the missing ones.
  run.n_trials = 27;
  run_status = RunStudy(*study, objective, run);
  ASSERT_TRUE(run_status.ok()) << run_status;
  int finished = 0;
  const std::vector<FrozenTrial> after = *study->Trials();
  for (const FrozenTrial& t : after) finished += t.finished();
  EXPECT_EQ(finished, 27);
  // An objective that always fails stops the run with an error after the allowed failures.
  run.n_trials = 40;
  run.max_failed_trials = 2;
  const absl::Status s = RunStudy(
      *study, [](TrialContext&) -> absl::StatusOr<double> { throw std::runtime_error("boom"); },
      run);
  EXPECT_TRUE(absl::IsAborted(s)) << s;
  EXPECT_NE(s.message().find("objective threw: boom"), absl::string_view::npos) << s;
}

}  // namespace
}  // namespace pmpd::hpo
