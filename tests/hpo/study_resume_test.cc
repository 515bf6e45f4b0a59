// Kill -9 at any time, rerun the same command, and the study continues: a study killed twice
// (real SIGKILLs of a forked worker) and studies resumed from journals cut at every record boundary
// and inside records end with the same trials, trial for trial, as an uninterrupted run.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <set>
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
using ::pmpd::hpo::testing::Warnings;
using ::pmpd::testing::MakeTempDir;
using ::pmpd::testing::ReadFile;
using ::pmpd::testing::WriteFile;

constexpr int kSteps = 4;

// A deterministic "training run": the loss curve of the params, reported after every epoch.
Objective Training(int sleep_us_per_step) {
  return [sleep_us_per_step](TrialContext& c) -> absl::StatusOr<double> {
    const Trial& t = c.trial();
    const double x = t.Float("x") - 1.0;
    const double final_loss = x * x + 0.1 * std::fabs(std::log2(double(t.Int("n"))) - 2.0) +
                              (t.Choice("c") == "b" ? 0.0 : 0.3);
    for (int step = 0; step < kSteps; ++step) {
      if (sleep_us_per_step > 0)
        std::this_thread::sleep_for(std::chrono::microseconds(sleep_us_per_step));
      if (absl::Status s = c.Report(step, final_loss + 1.0 / (step + 1)); !s.ok()) return s;
      if (c.ShouldPrune()) return TrialPruned();
    }
    return final_loss;
  };
}

std::vector<FrozenTrial> RunToEnd(const std::string& dir, const StudyOptions& options,
                                  int n_trials) {
  std::unique_ptr<Study> study = OpenOrDie(dir, MixedSpace(), options);
  if (study == nullptr) return {};
  const absl::Status s = RunStudy(*study, Training(0), n_trials);
  EXPECT_TRUE(s.ok()) << s;
  return *study->Trials();
}

int CountOccurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1))
    ++n;
  return n;
}

// Forks a worker that runs the study to n_trials; the caller kills it.
pid_t StartWorker(const std::string& dir, const StudyOptions& options, int n_trials) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    StudyOptions quiet = options;
    quiet.warn = [](const std::string&) {};
    absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, MixedSpace(), quiet);
    if (!study.ok()) ::_exit(2);
    const absl::Status s = RunStudy(**study, Training(3000), n_trials);
    ::_exit(s.ok() ? 0 : 3);
  }
  return pid;
}

// SIGKILLs `pid` in the middle of a trial (the journal's last record is a report) once at least
// `min_finished` trials are finished; returns how many were finished then, or nothing if the worker
// ended first.
std::optional<int> KillMidTrial(pid_t pid, const std::string& journal, int min_finished) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string text = ReadFile(journal);
    const size_t last = text.size() < 2 ? std::string::npos : text.rfind('\n', text.size() - 2);
    const bool mid_trial = !text.empty() && text.back() == '\n' && last != std::string::npos &&
                           text.find("\"op\":\"report\"", last) != std::string::npos;
    const int finished = CountOccurrences(text, "\"op\":\"finish\"");
    if (finished >= min_finished && mid_trial) {
      ::kill(pid, SIGKILL);
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) return std::nullopt;
      return finished;
    }
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  return std::nullopt;
}

TEST(StudyResumeTest, KilledTwiceMidTrialFinishesLikeAnUninterruptedRun) {
  constexpr int kTrials = 24;
  StudyOptions options;
  options.seed = 11;
  const std::vector<FrozenTrial> reference = RunToEnd(MakeTempDir("hpo_ref"), options, kTrials);

  const std::string dir = MakeTempDir("hpo_killed");
  const pid_t first = StartWorker(dir, options, kTrials);
  const std::optional<int> first_kill = KillMidTrial(first, JournalPath(dir), 5);
  ASSERT_TRUE(first_kill.has_value()) << "the first worker ended before it could be killed";
  // The second worker first reruns the trial the first kill interrupted; kill it in a later one.
  const pid_t second = StartWorker(dir, options, kTrials);
  const std::optional<int> second_kill = KillMidTrial(second, JournalPath(dir), *first_kill + 3);
  ASSERT_TRUE(second_kill.has_value()) << "the second worker ended before it could be killed";
  std::printf("[ killed ] SIGKILL with %d and with %d of %d trials finished\n", *first_kill,
              *second_kill, kTrials);

  Warnings warnings;
  options.warn = warnings.Sink();
  const std::vector<FrozenTrial> resumed = RunToEnd(dir, options, kTrials);
  // Exactly kTrials trials, all complete, numbers 0..kTrials-1 once each, the same as
  // uninterrupted.
  ASSERT_EQ(resumed.size(), size_t{kTrials});
  int rerun = 0;
  std::set<std::vector<double>> distinct;
  for (const FrozenTrial& t : resumed) {
    EXPECT_EQ(t.state, TrialState::kComplete) << "trial " << t.number;
    rerun += t.attempts > 1;
    distinct.insert(t.params);
  }
  EXPECT_EQ(distinct.size(), size_t{kTrials});
  ExpectSameTrials(reference, resumed, "killed twice");
  // Each kill left one trial running; the second worker reran the first one, the final run the
  // second one, each after a stale warning.
  EXPECT_EQ(rerun, 2);
  EXPECT_EQ(warnings.Count("is gone (no process"), 1)
      << "the second kill is found by the final run";
}

TEST(StudyResumeTest, ResumesFromEveryRecordBoundaryAndTornOffset) {
  constexpr int kTrials = 12;
  StudyOptions options;
  options.seed = 5;
  options.sync = false;  // hundreds of short-lived journals; durability is not what is tested here
  options.sampler.tpe.n_startup_trials = 4;
  options.pruner.type = PrunerConfig::Type::kMedian;
  options.pruner.median.n_startup_trials = 2;
  const std::string ref_dir = MakeTempDir("hpo_sweep_ref");
  const std::vector<FrozenTrial> reference = RunToEnd(ref_dir, options, kTrials);
  int pruned = 0;
  for (const FrozenTrial& t : reference) pruned += t.state == TrialState::kPruned;
  ASSERT_GT(pruned, 0) << "the sweep should cover pruned trials";
  // The journal does not change the values: an in-memory run gives the same trials.
  {
    std::unique_ptr<Study> memory = Study::InMemory(MixedSpace(), options);
    ASSERT_TRUE(RunStudy(*memory, Training(0), kTrials).ok());
    ExpectSameTrials(reference, *memory->Trials(), "in memory");
  }

  const std::string journal = ReadFile(JournalPath(ref_dir));
  std::vector<size_t> offsets = {0};
  for (size_t pos = 0; (pos = journal.find('\n', pos)) != std::string::npos; ++pos) {
    const size_t line_start = offsets.back();
    offsets.push_back((line_start + pos) / 2 + 1);  // inside the line (a torn write)
    offsets.push_back(pos + 1);                     // at the boundary after it
  }
  offsets.pop_back();  // the full journal: nothing to resume
  int torn = 0;
  for (size_t i = 0; i < offsets.size(); ++i) {
    const size_t offset = offsets[i];
    const std::string dir = MakeTempDir("hpo_sweep");
    WriteFile(JournalPath(dir), journal.substr(0, offset));
    Warnings warnings;
    StudyOptions resume = options;
    resume.warn = warnings.Sink();
    const std::vector<FrozenTrial> resumed = RunToEnd(dir, resume, kTrials);
    ExpectSameTrials(reference, resumed, "journal cut at byte " + std::to_string(offset));
    const bool mid_line = offset > 0 && journal[offset - 1] != '\n';
    EXPECT_EQ(warnings.Count("torn last record"), mid_line ? 1 : 0) << "cut at byte " << offset;
    torn += mid_line;
    if (HasFailure()) break;
  }
  std::printf(
      "[ resume sweep ] %zu cuts (%d inside a record) of a %zu-byte journal, %d pruned trials\n",
      offsets.size(), torn, journal.size(), pruned);
}

}  // namespace
}  // namespace pmpd::hpo
