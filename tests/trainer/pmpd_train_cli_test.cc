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
  {  // Issue 17: a corrupt checkpoint printed LibTorch's 14-frame backtrace; now one line.
    const std::string ckpt = dir + "/cls/checkpoints/pair_4_3.pt";
    const std::string good = testing::ReadFile(ckpt);
    testing::WriteFile(ckpt, good.substr(0, good.size() / 2));
    const testing::RunResult bad = testing::RunBinary(
        "cli/pmpd-train",
        absl::StrCat("--data ", dir, "/ts.h5 --precisions 4,3 --out ", dir, "/cls --epochs 3"));
    testing::ExpectCleanFailure(bad, "pmpd-train", ckpt + ": unreadable checkpoint (");
    EXPECT_EQ(bad.err.find("Exception raised from"), std::string::npos) << bad.err;
    EXPECT_EQ(bad.err.find("frame #"), std::string::npos) << bad.err;
    testing::WriteFile(ckpt, good);
  }
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

// kill -9 inside pmpd-train's writers (base/atomic_file.h's PMPD_CRASH_AT): a training checkpoint
// keeps the previous one (a rerun resumes from it); the export keeps the previous classifiers and
// manifest byte for byte, or is the complete new one, and the directory's other entries (training
// plots, checkpoints/) stay either way.
TEST(PmpdTrainCliTest, KilledInsideItsWritersKeepsThePreviousOrTheCompleteOutput) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/text/tinystories_train_head2MiB.txt");
  const std::string model =
      testing::QuantizeForTest("train_kill", testing::SharedPath("models/stories260K"), 2, 4);
  const std::string dir = testing::MakeTempDir("train_kill");
  ASSERT_EQ(
      testing::RunBinary(
          "cli/pmpd-gen-data",
          absl::StrCat("--model ", model, " --c4 ",
                       testing::SharedPath("data/text/tinystories_train_head2MiB.txt"), " --out ",
                       dir, "/ts.h5 --num-docs 12 --max-new-tokens 24 --precisions 4,3"))
          .exit_code,
      0);
  const std::string cls = dir + "/cls";
  auto train = [&](int epochs) {
    return absl::StrCat("--data ", dir, "/ts.h5 --precisions 4,3 --out ", cls, " --epochs ", epochs,
                        " --patience 100");
  };
  // The second epoch's checkpoint, killed before it is in place: the first epoch's stays.
  testing::RunBinaryKilledAt("pair_4_3.pt:written:2", "cli/pmpd-train", train(3));
  EXPECT_FALSE(testing::FileExistsForTest(cls + "/manifest.json"));
  const testing::RunResult resumed = testing::RunBinary("cli/pmpd-train", train(3));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resumed 1 epochs"), std::string::npos) << resumed.err;
  const std::string manifest = testing::ReadFile(cls + "/manifest.json");
  const std::string weights = testing::ReadFile(cls + "/classifier_4_3.safetensors");
  // A longer run's export, killed before the swap: the previous export, byte for byte.
  testing::RunBinaryKilledAt("/cls:written", "cli/pmpd-train", train(4));
  EXPECT_EQ(testing::ReadFile(cls + "/manifest.json"), manifest);
  EXPECT_EQ(testing::ReadFile(cls + "/classifier_4_3.safetensors"), weights);
  EXPECT_TRUE(testing::FileExistsForTest(cls + "/checkpoints/pair_4_3.pt"));
  // Killed right after the swap: the new export, complete, and the other entries carried over.
  testing::RunBinaryKilledAt("/cls:renamed", "cli/pmpd-train", train(4));
  const auto m = nlohmann::json::parse(testing::ReadFile(cls + "/manifest.json"));
  EXPECT_EQ(m["pairs"][0]["metrics"]["hyperparameters"]["epochs"].get<int>(), 4);
  EXPECT_TRUE(testing::FileExistsForTest(cls + "/checkpoints/pair_4_3.pt"));
  EXPECT_TRUE(testing::FileExistsForTest(cls + "/training_4_3.svg"));
  const testing::RunResult g = testing::RunBinary(
      "cli/pmpd-generate", absl::StrCat("--model ", model,
                                        " --prompt 'Once upon a time' --max-new-tokens 8 "
                                        "--precisions 4,3 --scheduler learned --classifier ",
                                        cls));
  EXPECT_EQ(g.exit_code, 0) << g.err;
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
                   " --task tinystories --num-prompts 3 --max-new-tokens 16 --precisions 4,3 "
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
  // With --json the table goes to stderr (stdout holds the JSON only).
  EXPECT_NE(r.err.find("| learned |"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pmpd
