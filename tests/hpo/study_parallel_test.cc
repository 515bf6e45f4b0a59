// Several workers on one journal: threads of one process (jobs = 2) and two processes. Trial
// numbers are never handed out twice and no record is lost. The constant liar keeps parallel
// workers from proposing the points other workers are running.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "hpo/run_study.h"
#include "hpo/study.h"
#include "tests/hpo/hpo_test_util.h"
#include "tests/test_util.h"

namespace pmpd::hpo {
namespace {

using ::pmpd::hpo::testing::ExpectSameTrials;
using ::pmpd::hpo::testing::MixedSpace;
using ::pmpd::hpo::testing::OpenOrDie;
using ::pmpd::testing::MakeTempDir;

double Loss(const Trial& t) {
  const double x = t.Float("x") - 1.0;
  return x * x + 0.05 * t.Int("n") + (t.Choice("c") == "a" ? 0.2 : 0.0);
}

// Reports three steps (sleeping a little so workers overlap) and returns Loss.
absl::StatusOr<double> SlowObjective(TrialContext& c) {
  for (int step = 0; step < 3; ++step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (absl::Status s = c.Report(step, Loss(c.trial()) + 1.0 / (step + 1)); !s.ok()) return s;
  }
  return Loss(c.trial());
}

// Every trial of a finished study: complete, numbered 0..n-1, three reports, the right value.
void ExpectCompleteAndUnique(const std::vector<FrozenTrial>& trials, int n,
                             const SearchSpace& space) {
  ASSERT_EQ(trials.size(), size_t(n));
  for (int i = 0; i < n; ++i) {
    const FrozenTrial& t = trials[i];
    EXPECT_EQ(t.number, i);
    EXPECT_EQ(t.state, TrialState::kComplete) << "trial " << i;
    EXPECT_EQ(t.intermediate.size(), 3u) << "trial " << i;
    const Trial handle(t.number, 1, t.params, std::make_shared<const SearchSpace>(space));
    EXPECT_EQ(t.value, Loss(handle)) << "trial " << i;
  }
}

TEST(StudyParallelTest, TwoThreadsShareOneJournal) {
  constexpr int kTrials = 24;
  const std::string dir = MakeTempDir("hpo_threads");
  const SearchSpace space = MixedSpace();
  StudyOptions options;
  options.sampler.tpe.constant_liar = true;
  std::mutex mu;
  std::map<int64_t, double> ran;  // what the objective returned, by trial number
  std::map<std::thread::id, int> per_thread;
  std::vector<FrozenTrial> live;
  {
    std::unique_ptr<Study> study = OpenOrDie(dir, space, options);
    const Objective objective = [&](TrialContext& c) -> absl::StatusOr<double> {
      absl::StatusOr<double> v = SlowObjective(c);
      std::lock_guard<std::mutex> lock(mu);
      EXPECT_TRUE(ran.emplace(c.number(), *v).second) << "trial " << c.number() << " ran twice";
      ++per_thread[std::this_thread::get_id()];
      return v;
    };
    ASSERT_TRUE(RunStudy(*study, objective, kTrials, /*jobs=*/2).ok());
    live = *study->Trials();
  }
  ExpectCompleteAndUnique(live, kTrials, space);
  EXPECT_EQ(ran.size(), size_t{kTrials});
  EXPECT_EQ(per_thread.size(), 2u) << "both threads should have run trials";
  // Everything is in the file: a fresh reader sees the same study.
  absl::StatusOr<std::unique_ptr<Study>> reread = Study::OpenExisting(dir);
  ASSERT_TRUE(reread.ok()) << reread.status();
  ExpectSameTrials(live, *(*reread)->Trials(), "re-read");
}

TEST(StudyParallelTest, TwoProcessesShareOneJournal) {
  constexpr int kTrials = 24;
  const std::string dir = MakeTempDir("hpo_procs");
  const SearchSpace space = MixedSpace();
  StudyOptions options;
  options.sampler.tpe.constant_liar = true;
  // Create the study first so both workers resume the same one.
  OpenOrDie(dir, space, options).reset();
  pid_t pids[2];
  for (int w = 0; w < 2; ++w) {
    pids[w] = ::fork();
    if (pids[w] == 0) {
      // Each worker logs "number value" of every trial it ran, for the parent to check.
      std::ofstream log(dir + "/worker" + std::to_string(w) + ".txt");
      absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, space, options);
      if (!study.ok()) ::_exit(2);
      RunOptions run;
      run.n_trials = kTrials;
      run.on_trial_end = [&](const FrozenTrial& t) {
        log << t.number << " " << nlohmann::json(*t.value).dump() << std::endl;
      };
      const absl::Status s = RunStudy(**study, SlowObjective, run);
      ::_exit(s.ok() ? 0 : 3);
    }
  }
  for (pid_t pid : pids) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "worker status " << status;
  }
  absl::StatusOr<std::unique_ptr<Study>> study = Study::OpenExisting(dir);
  ASSERT_TRUE(study.ok()) << study.status();
  const std::vector<FrozenTrial> trials = *(*study)->Trials();
  ExpectCompleteAndUnique(trials, kTrials, space);
  // Every trial was run by exactly one worker, and what the worker saw is what the journal holds.
  std::map<int64_t, int> runs;
  int per_worker[2] = {0, 0};
  for (int w = 0; w < 2; ++w) {
    std::ifstream log(dir + "/worker" + std::to_string(w) + ".txt");
    int64_t number;
    std::string value;
    while (log >> number >> value) {
      ++runs[number];
      ++per_worker[w];
      ASSERT_LT(number, kTrials);
      EXPECT_EQ(nlohmann::json(*trials[number].value).dump(), value) << "trial " << number;
    }
  }
  EXPECT_EQ(runs.size(), size_t{kTrials});
  for (const auto& [number, count] : runs) EXPECT_EQ(count, 1) << "trial " << number;
  std::printf("[ two processes ] trials run by worker 0: %d, worker 1: %d\n", per_worker[0],
              per_worker[1]);
  EXPECT_GT(per_worker[0], 0);
  EXPECT_GT(per_worker[1], 0);
}

// Batches of 4 trials asked together (4 parallel workers, in lock step) and told together. Counts
// the suggestions that repeat, or come within 1% of the range of, a trial still running.
int DuplicateSuggestions(bool liar, const SearchSpace& space, double (*f)(const Trial&),
                         double tolerance) {
  int duplicates = 0;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    StudyOptions options;
    options.seed = seed;
    options.sampler.tpe.constant_liar = liar;
    std::unique_ptr<Study> study = Study::InMemory(space, options);
    for (int batch = 0; batch < 15; ++batch) {
      std::vector<Trial> running;
      for (int k = 0; k < 4; ++k) {
        const Trial t = *study->Ask();
        for (const Trial& r : running) {
          double distance = 0.0;
          for (size_t d = 0; d < space.size(); ++d) {
            const ParamSpec& p = space.param(d);
            distance =
                std::max(distance, std::fabs(t.values()[d] - r.values()[d]) / (p.high - p.low));
          }
          if (distance <= tolerance) {
            ++duplicates;
            break;
          }
        }
        running.push_back(t);
      }
      for (const Trial& t : running) EXPECT_TRUE(study->Tell(t.number(), f(t)).ok());
    }
  }
  return duplicates;
}

double Bowl(const Trial& t) {
  const double x = t.Float("x") - 6.0, y = t.Float("y") - 3.0;
  return x * x + y * y;
}

TEST(StudyParallelTest, ConstantLiarReducesDuplicateSuggestions) {
  absl::StatusOr<SearchSpace> grid =
      SearchSpace::FromParams({ParamSpec::Int("x", 0, 9), ParamSpec::Int("y", 0, 9)});
  absl::StatusOr<SearchSpace> plane =
      SearchSpace::FromParams({ParamSpec::Float("x", 0, 10), ParamSpec::Float("y", 0, 10)});
  ASSERT_TRUE(grid.ok() && plane.ok());
  const int grid_plain = DuplicateSuggestions(false, *grid, Bowl, 0.0);
  const int grid_liar = DuplicateSuggestions(true, *grid, Bowl, 0.0);
  const int plane_plain = DuplicateSuggestions(false, *plane, Bowl, 0.01);
  const int plane_liar = DuplicateSuggestions(true, *plane, Bowl, 0.01);
  std::printf(
      "[ constant liar ] of 225 suggestions made while others of their batch ran (5 seeds x 15 "
      "batches x 3):\n"
      "  exact repeats of a running trial on a 10x10 grid: %d without, %d with the liar\n"
      "  within 1%% of the range of a running trial on [0,10]^2: %d without, %d with the liar\n",
      grid_plain, grid_liar, plane_plain, plane_liar);
  EXPECT_LT(grid_liar, grid_plain);
  EXPECT_LT(plane_liar, plane_plain);
}

}  // namespace
}  // namespace pmpd::hpo
