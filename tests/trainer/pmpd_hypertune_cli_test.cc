// pmpd-hypertune end to end on a synthetic gen-data file: a study that beats (or ties) pmpd-train's
// defaults, exports loadable classifiers, resumes, and refuses bad spaces.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "scheduler_runtime/kv_classifier.h"
#include "tests/test_util.h"
#include "tests/trainer/synthetic_kv_data.h"
#include "trainer/classifier_trainer.h"

namespace pmpd::trainer {
namespace {

nlohmann::json LastJson(const std::string& out) {
  return nlohmann::json::parse(out.substr(out.rfind("\n{") + 1));
}

TEST(PmpdHypertuneCliTest, StudyBeatsDefaultsExportsAndResumes) {
  const std::string data = SyntheticData("ht_data", 80, 11);
  const std::string out = testing::MakeTempDir("ht_out");
  const std::string args = absl::StrCat("--data ", data, " --precisions 4,3 --out ", out,
                                        " --seed 2 --device cpu --json");
  const testing::RunResult r = testing::RunBinary("cli/pmpd-hypertune", args + " --trials 8");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = LastJson(r.out);
  EXPECT_EQ(j["completed"].get<int>() + j["pruned"].get<int>(), 8);
  // pmpd-train's defaults with the same seed: the value trial 0 (the enqueued defaults) must
  // reproduce.
  TrainOptions defaults;
  defaults.seed = 2;
  auto d = TrainPairClassifier(data, 4, 3, defaults);
  ASSERT_TRUE(d.ok());
  const double default_loss = d->epochs[d->best_epoch - 1].val_loss;
  EXPECT_LE(j["best_value"].get<double>(), default_loss);
  EXPECT_NE(testing::ReadFile(out + "/trials.csv").find(absl::StrCat("0,complete,")),
            std::string::npos);
  std::fprintf(stderr, "best %.5f vs pmpd-train defaults %.5f\n", j["best_value"].get<double>(),
               default_loss);
  for (const char* f : {"manifest.json", "classifier_4_3.safetensors", "history.svg",
                        "leaderboard.txt", "importance.txt"}) {
    EXPECT_TRUE(testing::FileExistsForTest(out + "/" + f)) << f;
  }
  scheduler::LearnedSchedulerOptions lo{out, {4, 3}, kH, kD, 255};
  EXPECT_TRUE(scheduler::MakeLearnedScheduler(lo).ok());
  // Resume to 11: three more trials, numbers never repeated.
  const testing::RunResult more = testing::RunBinary("cli/pmpd-hypertune", args + " --trials 11");
  ASSERT_EQ(more.exit_code, 0) << more.err;
  const auto j2 = LastJson(more.out);
  EXPECT_EQ(j2["trials"].get<int>(), 11);
  std::set<std::string> numbers;
  for (const auto& line :
       absl::StrSplit(testing::ReadFile(out + "/trials.csv"), '\n', absl::SkipEmpty())) {
    numbers.insert(std::string(line.substr(0, line.find(','))));
  }
  EXPECT_EQ(numbers.size(), 12u);  // header + 11 distinct trial numbers
  // kill -9 inside the export (base/atomic_file.h's PMPD_CRASH_AT): the manifest goes first, so the
  // half-written export is refused with a clear error, never loaded; a rerun completes it.
  testing::RunBinaryKilledAt(out + "/classifier_4_3.safetensors:written", "cli/pmpd-hypertune",
                             args + " --trials 12");
  EXPECT_FALSE(testing::FileExistsForTest(out + "/manifest.json"));
  auto refused = scheduler::MakeLearnedScheduler(lo);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("manifest.json"), std::string::npos)
      << refused.status();
  const testing::RunResult finished =
      testing::RunBinary("cli/pmpd-hypertune", args + " --trials 12");
  ASSERT_EQ(finished.exit_code, 0) << finished.err;
  EXPECT_EQ(LastJson(finished.out)["trials"].get<int>(), 12);
  EXPECT_TRUE(scheduler::MakeLearnedScheduler(lo).ok());
  // Other training settings for the same study directory: its trials are not comparable.
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-hypertune", args + " --trials 12 --balance none"),
      "pmpd-hypertune",
      "this study's trials were made with other objective settings: balance: \"weighted\" in "
      "the journal, \"none\" now");
  // Another space for the same study directory; a malformed space file.
  testing::WriteFile(out + "/space.json",
                     R"({"params": [{"name": "lr", "type": "float", "low": 1e-4, "high": 1e-2}]})");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-hypertune",
                         args + " --trials 12 --space " + out + "/space.json"),
      "pmpd-hypertune", "space");
  testing::WriteFile(out + "/bad.json",
                     R"({"params": [{"name": "lr", "type": "float", "low": 1, "high": 1}]})");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-hypertune", absl::StrCat("--data ", data, " --out ", out,
                                                            "/x --space ", out, "/bad.json")),
      "pmpd-hypertune", "bad.json: params[0] (\"lr\"): low (1) must be < high (1)");
}

// Issue 17: an integer hyperparameter declared as a float was truncated when used (2.0959 epochs
// trained 2) and reported untruncated; now the space is refused, naming the file and parameter.
TEST(PmpdHypertuneCliTest, IntegerHyperparametersMustBeSearchedAsIntegers) {
  const std::string data = SyntheticData("ht_int", 20, 12);
  const std::string out = testing::MakeTempDir("ht_int_out");
  for (const char* param :
       {R"({"name": "epochs", "type": "float", "low": 1, "high": 4})",
        R"({"name": "batch_size", "type": "categorical", "choices": [8, 16.5]})"}) {
    testing::WriteFile(out + "/space.json", absl::StrCat(R"({"params": [)", param, "]}"));
    testing::ExpectCleanFailure(
        testing::RunBinary("cli/pmpd-hypertune",
                           absl::StrCat("--data ", data, " --precisions 4,3 --out ", out,
                                        "/o --trials 1 --space ", out, "/space.json")),
        "pmpd-hypertune", "is an integer hyperparameter: declare it \"type\": \"int\"");
  }
}

}  // namespace
}  // namespace pmpd::trainer
