#include "hpo/study_report.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>

#include "hpo/param_importance.h"
#include "hpo/run_study.h"
#include "hpo/study.h"
#include "tests/test_util.h"

namespace pmpd::hpo {
namespace {

using ::pmpd::testing::MakeTempDir;
using ::pmpd::testing::ReadFile;

FrozenTrial Done(int64_t number, TrialState state, std::optional<double> value,
                 std::vector<double> params) {
  FrozenTrial t;
  t.number = number;
  t.state = state;
  t.value = value;
  t.params = std::move(params);
  t.start_time = 100.0;
  t.end_time = state == TrialState::kRunning ? 0.0 : 101.25;
  return t;
}

SearchSpace ReportSpace() {
  absl::StatusOr<SearchSpace> space =
      SearchSpace::FromParams({ParamSpec::Float("lr", 1e-4, 1.0, true),
                               ParamSpec::Categorical("act", {"relu", "gelu, tanh"})});
  EXPECT_TRUE(space.ok());
  return *space;
}

std::vector<FrozenTrial> SomeTrials() {
  return {Done(0, TrialState::kComplete, 0.5, {0.01, 0}),
          Done(1, TrialState::kPruned, 0.9, {0.1, 1}),
          Done(2, TrialState::kComplete, 0.25, {0.001, 1}),
          Done(3, TrialState::kFail, std::nullopt, {0.5, 0}),
          Done(4, TrialState::kRunning, std::nullopt, {0.2, 0}),
          Done(5, TrialState::kComplete, 0.75, {0.3, 0})};
}

TEST(StudyReportTest, CsvHasOneQuotedRowPerTrial) {
  const std::string csv = TrialsCsv(ReportSpace(), SomeTrials());
  EXPECT_EQ(csv,
            "number,state,value,lr,act,duration_s,attempts\n"
            "0,complete,0.5,0.01,relu,1.250,1\n"
            "1,pruned,0.9,0.1,\"gelu, tanh\",1.250,1\n"
            "2,complete,0.25,0.001,\"gelu, tanh\",1.250,1\n"
            "3,fail,,0.5,relu,1.250,1\n"
            "4,running,,0.2,relu,,1\n"
            "5,complete,0.75,0.3,relu,1.250,1\n");
}

TEST(StudyReportTest, LeaderboardRanksCompleteTrials) {
  const std::string board = Leaderboard(ReportSpace(), SomeTrials(), Direction::kMinimize, 2);
  EXPECT_EQ(board,
            "top 2 of 3 complete trials (minimize)\n"
            "rank  trial  value  lr     act\n"
            "   1      2   0.25  0.001  gelu, tanh\n"
            "   2      0    0.5  0.01   relu\n");
  const std::string max = Leaderboard(ReportSpace(), SomeTrials(), Direction::kMaximize, 1);
  EXPECT_NE(max.find("   1      5   0.75"), std::string::npos) << max;
}

TEST(StudyReportTest, HistorySvgPlotsCompleteTrialsAndTheBestSoFar) {
  const std::string svg = HistorySvg(SomeTrials(), Direction::kMinimize, "a <b> study");
  EXPECT_EQ(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0), 0u);
  EXPECT_NE(svg.find("a &lt;b&gt; study"), std::string::npos);
  // One dot per complete trial (3) plus the legend's.
  size_t dots = 0;
  for (size_t p = svg.find("<circle"); p != std::string::npos; p = svg.find("<circle", p + 1))
    ++dots;
  EXPECT_EQ(dots, 4u);
  EXPECT_NE(svg.find("<title>trial 2: 0.25</title>"), std::string::npos);
  EXPECT_NE(svg.find("<polyline points="), std::string::npos);
  EXPECT_EQ(svg.substr(svg.size() - 7), "</svg>\n");
  EXPECT_NE(HistorySvg({}, Direction::kMinimize, "t").find("no complete trials yet"),
            std::string::npos);
}

TEST(HpoParamImportanceTest, FindsTheParameterThatMatters) {
  // The objective depends on "a" only; "b" and "c" are noise. Random sampling, so the parameters
  // are independent and the marginal effect sizes are honest.
  absl::StatusOr<SearchSpace> space =
      SearchSpace::FromParams({ParamSpec::Float("a", 0, 1), ParamSpec::Float("b", 0, 1),
                               ParamSpec::Categorical("c", {"x", "y", "z"})});
  ASSERT_TRUE(space.ok());
  StudyOptions options;
  options.sampler.type = SamplerConfig::Type::kRandom;
  options.seed = 4;
  std::unique_ptr<Study> study = Study::InMemory(*space, options);
  EXPECT_TRUE(absl::IsFailedPrecondition(ComputeImportance(*space, *study->Trials()).status()));
  ASSERT_TRUE(RunStudy(
                  *study,
                  [](TrialContext& c) -> absl::StatusOr<double> {
                    return std::sin(3.0 * c.trial().Float("a"));
                  },
                  80)
                  .ok());
  absl::StatusOr<std::vector<ParamImportance>> imp = ComputeImportance(*space, *study->Trials());
  ASSERT_TRUE(imp.ok()) << imp.status();
  std::printf("%s", ImportanceText(*imp).c_str());
  // a decides the objective, so a's 8 bins of 10 trials separate the ranks (what is left is the
  // spread of sin(3a) inside each bin); b and c only explain chance, expected omega^2 ~ 0.
  EXPECT_EQ((*imp)[0].bins, 8);
  EXPECT_EQ((*imp)[2].bins, 3);
  EXPECT_GT((*imp)[0].omega2, 0.8);
  EXPECT_LT((*imp)[1].omega2, 0.1);
  EXPECT_LT((*imp)[2].omega2, 0.1);
  EXPECT_GT((*imp)[0].share, 0.85);
  EXPECT_NEAR((*imp)[0].share + (*imp)[1].share + (*imp)[2].share, 1.0, 1e-12);
}

TEST(StudyReportTest, WritesAllFiles) {
  const std::string dir = MakeTempDir("hpo_report") + "/report";
  ASSERT_TRUE(WriteStudyReport(dir, ReportSpace(), SomeTrials(), Direction::kMinimize).ok());
  EXPECT_EQ(ReadFile(dir + "/trials.csv"), TrialsCsv(ReportSpace(), SomeTrials()));
  EXPECT_NE(ReadFile(dir + "/leaderboard.txt").find("top 3 of 3"), std::string::npos);
  EXPECT_NE(ReadFile(dir + "/history.svg").find("</svg>"), std::string::npos);
  EXPECT_EQ(ReadFile(dir + "/importance.txt"),
            "not computed: parameter importance needs at least 10 complete trials, have 3\n");
  const absl::Status bad =
      WriteStudyReport("/proc/no/such/dir", ReportSpace(), SomeTrials(), Direction::kMinimize);
  EXPECT_NE(bad.message().find("/proc/no/such/dir: cannot create"), absl::string_view::npos) << bad;
}

// kill -9 inside a report file's commit (base/atomic_file.h's PMPD_CRASH_AT) of a forked writer:
// before the rename the previous file is intact; right after it the file is the new report's.
TEST(StudyReportTest, KilledInsideAFileCommitKeepsThePreviousOrTheNewFile) {
  const std::string dir = MakeTempDir("hpo_report_kill") + "/report";
  const std::vector<FrozenTrial> all = SomeTrials();
  const std::vector<FrozenTrial> first(all.begin(), all.begin() + 3);
  ASSERT_TRUE(WriteStudyReport(dir, ReportSpace(), first, Direction::kMinimize).ok());
  const std::string csv = ReadFile(dir + "/trials.csv"), board = ReadFile(dir + "/leaderboard.txt");
  auto killed_at = [&](const char* stage) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::setenv("PMPD_CRASH_AT", stage, 1);
      (void)WriteStudyReport(dir, ReportSpace(), SomeTrials(), Direction::kMinimize);
      _exit(0);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
  };
  ASSERT_TRUE(killed_at("/trials.csv:written"));
  EXPECT_EQ(ReadFile(dir + "/trials.csv"), csv);
  EXPECT_EQ(ReadFile(dir + "/leaderboard.txt"), board);
  ASSERT_TRUE(killed_at("/trials.csv:renamed"));
  EXPECT_EQ(ReadFile(dir + "/trials.csv"), TrialsCsv(ReportSpace(), SomeTrials()));
}

}  // namespace
}  // namespace pmpd::hpo
