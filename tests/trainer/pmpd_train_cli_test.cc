// pmpd-train, and the learned scheduler in pmpd-generate and pmpd-eval, run as the real binaries.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "scheduler_runtime/kv_classifier.h"
#include "tests/test_util.h"

namespace pmpd {
namespace {

nlohmann::json LastJson(const std::string& out) {
  return nlohmann::json::parse(out.substr(out.rfind("\n{") + 1));
}

TEST(PmpdTrainCliTest, TrainsExportsAndRefusesMissingPairs) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/text/tinystories_train_head2MiB.txt");
  const std::string model =
      testing::QuantizeForTest("train_cli", testing::SharedPath("models/stories260K"), 2, 4);
  const std::string dir = testing::MakeTempDir("train_cli");
  const testing::RunResult gen = testing::RunBinary(
      "cli/pmpd-gen-data",
      absl::StrCat("--model ", model, " --c4 ",
                   testing::SharedPath("data/text/tinystories_train_head2MiB.txt"), " --out ", dir,
                   "/ts.h5 --num-docs 12 --max-new-tokens 24 --precisions 4,3"));
  ASSERT_EQ(gen.exit_code, 0) << gen.err;
  const testing::RunResult train = testing::RunBinary(
      "cli/pmpd-train", absl::StrCat("--data ", dir, "/ts.h5 --precisions 4,3 --out ", dir,
                                     "/cls --epochs 3 --json"));
  ASSERT_EQ(train.exit_code, 0) << train.err;
  EXPECT_NE(train.err.find("epoch   3/3"), std::string::npos) << train.err;
  EXPECT_NE(train.err.find("truth\\pred"), std::string::npos) << "no confusion matrix shown";
  const auto j = LastJson(train.out);
  EXPECT_EQ(j["pairs"][0]["pair"], "4_3");
  EXPECT_TRUE(testing::FileExistsForTest(dir + "/cls/manifest.json"));
  EXPECT_TRUE(testing::FileExistsForTest(dir + "/cls/classifier_4_3.safetensors"));
  EXPECT_TRUE(testing::FileExistsForTest(dir + "/cls/training_4_3.svg"));
  // Rerun: every epoch comes from the checkpoint.
  const testing::RunResult again = testing::RunBinary(
      "cli/pmpd-train",
      absl::StrCat("--data ", dir, "/ts.h5 --precisions 4,3 --out ", dir, "/cls --epochs 3"));
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err.find("resumed 3 epochs"), std::string::npos) << again.err;
  // The exported classifiers drive pmpd-generate.
  const testing::RunResult g = testing::RunBinary(
      "cli/pmpd-generate", absl::StrCat("--model ", model,
                                        " --prompt 'Once upon a time' --max-new-tokens 20 "
                                        "--precisions 4,3 --scheduler learned --classifier ",
                                        dir, "/cls --json"));
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const auto gj = LastJson(g.out);
  EXPECT_NE(gj["schedule"].get<std::string>().find("learned 4->3"), std::string::npos);
  EXPECT_GT(gj["schedule_us"].get<double>(), 0.0);
  // Bad input: a pair that is not in the data; a classifier directory lacking a pair.
  testing::ExpectCleanFailure(
      testing::RunBinary(
          "cli/pmpd-train",
          absl::StrCat("--data ", dir, "/ts.h5 --precisions 4,3,2 --out ", dir, "/x")),
      "pmpd-train", "no group pair_3_2");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-generate", absl::StrCat("--model ", model,
                                                           " --prompt a --precisions 4,3,2 "
                                                           "--scheduler learned --classifier ",
                                                           dir, "/cls")),
      "pmpd-generate", "has no classifier for 3->2 (it has 4->3)");
  testing::ExpectCleanFailure(
      testing::RunBinary("cli/pmpd-generate", absl::StrCat("--model ", model,
                                                           " --prompt a --precisions 4,3 "
                                                           "--scheduler learned")),
      "pmpd-generate", "needs --classifier");
}

// PMPD-Learned next to the baselines and PMPD-Static in pmpd-eval, with the reference-format
// classifier from tests/golden (its shape fits stories260K: 4 KV heads of dim 8).
TEST(PmpdTrainCliTest, EvalHasALearnedRow) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string model =
      testing::QuantizeForTest("eval_learned", testing::SharedPath("models/stories260K"), 2, 4);
  const testing::RunResult r = testing::RunBinary(
      "cli/pmpd-eval",
      absl::StrCat("--model ", model,
                   " --task tinystories --n 3 --max-new-tokens 16 --precisions 4,3 "
                   "--methods high,low,static,learned --switch-steps 8 --classifier ",
                   testing::SourcePath("tests/golden/reference_classifier"), " --shared-dir ",
                   testing::SharedDir(), " --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = LastJson(r.out);
  ASSERT_EQ(j["rows"].size(), 4u);
  EXPECT_EQ(j["rows"][3]["method"], "learned");
  const double bits = j["rows"][3]["avg_bits"];
  EXPECT_GE(bits, 3.0);
  EXPECT_LE(bits, 4.0);
  EXPECT_GT(j["rows"][3]["scheduler_us_per_prompt"].get<double>(), 0.0);
  EXPECT_NE(r.out.find("| learned |"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace pmpd
