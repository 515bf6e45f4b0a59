// The command-line conventions every tool shares (README "Command-line conventions", issue 16):
// --help exits 0 with dashed names grouped by purpose, --version names the build, an unknown flag
// gets a "did you mean", every flag is checked before any model or data is read, deprecated
// names still work with a notice, --json prints JSON and nothing else on stdout, and classifiers
// exported for another model are refused unless --force.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/test_util.h"

namespace pmpd {
namespace {

using testing::RunBinary;
using testing::RunResult;

// Every tool; pmpd-serve where cpp-httplib was found at configure time (PMPD_HAVE_SERVE).
const std::vector<const char*> kTools = {"pmpd-generate", "pmpd-quantize",        "pmpd-perplexity",
                                         "pmpd-gen-data", "pmpd-train",           "pmpd-hypertune",
                                         "pmpd-eval",     "pmpd-make-tiny-model",
#ifdef PMPD_HAVE_SERVE
                                         "pmpd-serve"
#endif
};

RunResult RunTool(const std::string& tool, const std::string& args) {
  return RunBinary("cli/" + tool, args);
}

TEST(ConventionsCliTest, HelpExitsZeroWithDashedNamesInGroups) {
  for (const char* tool : kTools) {
    SCOPED_TRACE(tool);
    const RunResult r = RunTool(tool, "--help");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("Flags may be written with dashes or underscores"), std::string::npos);
    int flags = 0, sections = 0;
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (absl::StartsWith(line, "  --")) {
        ++flags;
        const absl::string_view name = line.substr(4, line.find(' ', 4) - 4);
        EXPECT_EQ(name.find('_'), absl::string_view::npos) << "underscore in " << line;
      }
      if (!line.empty() && line.back() == ':' && line[0] != ' ') ++sections;
      EXPECT_NE(line, "Other:") << "every flag of " << tool << " belongs to a group";
    }
    EXPECT_GE(flags, 2) << r.out;
    EXPECT_GE(sections, 1) << r.out;
    EXPECT_EQ(RunTool(tool, "-h").out, r.out) << "-h is --help";
  }
  // A flag's type, default and help.
  const RunResult g = RunTool("pmpd-generate", "--help");
  EXPECT_NE(g.out.find("\nGeneration:\n  --max-new-tokens <int> (default: 64)\n      Most tokens"),
            std::string::npos)
      << g.out;
  EXPECT_NE(g.out.find("\nSchedule (PMPD):\n"), std::string::npos);
}

TEST(ConventionsCliTest, VersionNamesReleaseBuildTypeAndCommit) {
  const std::regex line(
      R"(^pmpd-[a-z-]+ [0-9]+\.[0-9]+\.[0-9]+ \([A-Za-z ]+, commit ([0-9a-f]{7,}(-dirty)?|unknown)\)
$)");
  for (const char* tool : kTools) {
    SCOPED_TRACE(tool);
    const RunResult r = RunTool(tool, "--version");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(std::regex_match(r.out, line)) << r.out;
    EXPECT_EQ(r.out.rfind(std::string(tool) + " ", 0), 0u) << r.out;
    EXPECT_EQ(r.out.find("Debug build"), std::string::npos) << "not Abseil's --version";
  }
}

// cli/build_info.cmake outside a git checkout: the commit is "unknown"; the file it writes is
// rewritten only when its text changes (an unchanged commit must not rebuild the tools).
TEST(ConventionsCliTest, BuildInfoWithoutGitSaysUnknown) {
  const std::string dir = testing::MakeTempDir("build_info");
  const std::string cmd = absl::StrCat(PMPD_CMAKE_COMMAND, " -DSOURCE_DIR=", dir, " -DOUT=", dir,
                                       "/build_info.cc -DVERSION=1.2.3 -DBUILD_TYPE=Debug -P ",
                                       testing::SourcePath("cli/build_info.cmake"));
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string text = testing::ReadFile(dir + "/build_info.cc");
  EXPECT_NE(text.find("kVersion[] = \"1.2.3\""), std::string::npos) << text;
  EXPECT_NE(text.find("kBuildType[] = \"Debug\""), std::string::npos) << text;
  EXPECT_NE(text.find("kGitCommit[] = \"unknown\""), std::string::npos) << text;
  struct stat before, after;
  ASSERT_EQ(::stat((dir + "/build_info.cc").c_str(), &before), 0);
  ::sleep(1);
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_EQ(::stat((dir + "/build_info.cc").c_str(), &after), 0);
  EXPECT_EQ(before.st_mtime, after.st_mtime) << "rewritten although unchanged";
}

TEST(ConventionsCliTest, UnknownFlagsGetTheClosestName) {
  RunResult r = RunTool("pmpd-generate", "--model m --prompt hi --max-new-token 3");
  testing::ExpectCleanFailure(
      r, "pmpd-generate",
      "unknown flag --max-new-token (see --help); did you mean --max-new-tokens?");
  EXPECT_EQ(r.exit_code, 2);
  r = RunTool("pmpd-eval", "--num-promts 3");
  testing::ExpectCleanFailure(r, "pmpd-eval", "did you mean --num-prompts?");
  EXPECT_EQ(r.exit_code, 2);
  r = RunTool("pmpd-quantize", "--seed_precison 2");
  testing::ExpectCleanFailure(r, "pmpd-quantize", "did you mean --seed-precision?");
  r = RunTool("pmpd-train", "--frobnicate 1");
  testing::ExpectCleanFailure(r, "pmpd-train", "unknown flag --frobnicate (see --help)\n");
  EXPECT_EQ(r.err.find("did you mean"), std::string::npos) << "no hint for a far name";
  r = RunTool("pmpd-generate", "--model m --prompt");
  testing::ExpectCleanFailure(r, "pmpd-generate", "--prompt needs a value");
  EXPECT_EQ(r.exit_code, 2);
}

// A bad value is reported as such, exit 2, before anything is read: --model, --data and --c4
// name files that do not exist, so a tool that looked at them first would say so instead.
TEST(ConventionsCliTest, EveryFlagIsCheckedBeforeAnythingIsLoaded) {
  struct Case {
    const char* tool;
    const char* args;
    const char* error;
  };
  const std::string gen = "--model /nonexistent --prompt hi ";
  const std::string eval = "--model /nonexistent --task tinystories ";
  const std::string train = "--data /nonexistent.h5 --out /nonexistent/out ";
  const std::string ppl = "--model /nonexistent --data /nonexistent.txt ";
  const std::string quant = "--model /nonexistent --out /nonexistent/out ";
  const std::string gd = "--model /nonexistent --c4 /nonexistent --out /nonexistent/x.h5 ";
  const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> cases = {
      {"pmpd-generate", {gen + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-generate", {gen + "--temperature -1", "--temperature must be >= 0"}},
      {"pmpd-generate", {gen + "--temperature 1 --top-p 1.5", "--top-p must be in (0, 1]"}},
      {"pmpd-generate", {gen + "--temperature 1 --top-k -2", "--top-k must be >= 0"}},
      {"pmpd-generate", {gen + "--max-new-tokens 0", "--max-new-tokens must be >= 1"}},
      {"pmpd-generate", {gen + "--color sometimes", "--color must be auto, always or never"}},
      {"pmpd-generate", {gen + "--precisions 4,x --switch-steps 8", "--precisions"}},
      {"pmpd-generate", {gen + "--precisions 4,3", "--scheduler static needs --switch-steps"}},
      {"pmpd-generate", {gen + "--precisions 4,3 --scheduler fancy", "expected static or learned"}},
      {"pmpd-generate", {gen + "--chat --chat-template gemma", "unknown chat template \"gemma\""}},
      {"pmpd-generate", {gen + "--top-k 5", "--top-k has no effect with --temperature 0"}},
      {"pmpd-generate", {gen + "--top-p 0.9", "--top-p has no effect with --temperature 0"}},
      {"pmpd-generate",
       {gen + "--precisions 4,3 --scheduler learned --classifier /c --switch-steps 8",
        "--switch-steps is for --scheduler static"}},
      {"pmpd-generate",
       {gen + "--precisions 4,3 --switch-steps 8 --classifier /c",
        "--classifier is for --scheduler learned"}},
      {"pmpd-generate", {gen + "--prompt-file /p.txt", "--prompt and --prompt-file exclude"}},
      {"pmpd-eval", {eval + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-eval", {eval + "--num-prompts 0", "must be >= 1"}},
      {"pmpd-eval", {eval + "--methods static", "the static method needs --switch-steps"}},
      {"pmpd-eval", {eval + "--methods static --switch-steps 8,9", "need 1 value(s) for 2"}},
      {"pmpd-eval", {eval + "--methods best", "unknown method \"best\""}},
      {"pmpd-eval", {eval + "--chat-template gemma", "unknown chat template \"gemma\""}},
      {"pmpd-eval",
       {eval + "--methods high,low --switch-steps 8",
        "--switch-steps has no effect with --methods high,low"}},
      {"pmpd-eval",
       {eval + "--methods static --switch-steps 8 --calibrate-static",
        "--switch-steps has no effect with --calibrate-static"}},
      {"pmpd-eval",
       {eval + "--methods high --classifier /c", "--classifier has no effect with --methods high"}},
      {"pmpd-eval",
       {eval + "--methods high,static --switch-steps 8 --switch-quantile 0.5",
        "--switch-quantile has no effect with --methods high,static"}},
      {"pmpd-eval",
       {eval + "--methods learned --classifier /c --calibrate-learned quality "
               "--switch-quantile 0.5",
        "--switch-quantile has no effect with --calibrate-learned"}},
      {"pmpd-eval",
       {eval + "--methods high --reference-model /m",
        "--reference-model has no effect with --reference dataset"}},
      {"pmpd-train", {train + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-train", {train + "--epochs 0", "--epochs, --batch-size"}},
      {"pmpd-train", {train + "--balance maybe", "--balance must be weighted"}},
      {"pmpd-train", {train + "--candidate-steps 48,0", "--candidate-steps must be increasing"}},
      {"pmpd-hypertune", {train + "--candidate-steps 0,0", "--candidate-steps must be increasing"}},
      {"pmpd-hypertune", {train + "--sampler grid", "--sampler must be tpe or random"}},
      {"pmpd-hypertune", {train + "--pruner hyperband", "--pruner must be median, asha or none"}},
      {"pmpd-hypertune", {train + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-hypertune", {train + "--label-tolerance -1", "need numbers >= 0, comma-separated"}},
      {"pmpd-train",
       {train + "--precisions 4,3,2 --label-tolerance 0.1,0.2,0.3", "give one, or one per"}},
      {"pmpd-perplexity", {ppl + "--seq-len 1", "--seq-len must be >= 2"}},
      {"pmpd-perplexity", {ppl + "--num-docs -1", "--num-docs and --precision >= 0"}},
      {"pmpd-perplexity", {ppl + "--byte-range 0.8:0.2", "--byte-range must be BEGIN:END"}},
      {"pmpd-perplexity", {ppl + "--device cuda", "runs the CPU reference engine only"}},
      {"pmpd-quantize", {quant + "--threads -1", "--threads must be >= 0"}},
      {"pmpd-quantize", {quant + "--seed-precision 1", "must satisfy 2 <= seed <= parent <= 8"}},
      {"pmpd-quantize", {quant + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-quantize",
       {quant + "--rtn-bits 3 --calib /c.json", "--calib has no effect with --rtn-bits"}},
      {"pmpd-quantize",
       {quant + "--rtn-bits 3 --seed-precision 2",
        "--seed-precision has no effect with --rtn-bits"}},
      {"pmpd-quantize", {quant + "--rtn-bits 9", "--rtn-bits must be in 1..8"}},
      {"pmpd-quantize", {quant + "--seq-len 64", "--seq-len has no effect without --calib"}},
      {"pmpd-quantize",
       {quant + "--fisher-checkpoint-every 2",
        "--fisher-checkpoint-every has no effect without --calib"}},
      {"pmpd-quantize",
       {quant + "--calib /c.json --fisher-checkpoint-every -1",
        "--fisher-checkpoint-every must be >= 0"}},
      {"pmpd-quantize", {quant + "--rtn-bits 3 --device cuda", "--device has no effect with"}},
      {"pmpd-quantize", {quant + "--shard 2/2", "expected i/n with 0 <= i < n"}},
      {"pmpd-quantize", {quant + "--device cuda --threads 4", "--threads has no effect with"}},
      {"pmpd-quantize", {quant + "--rtn-bits 3 --shard 0/2", "--shard has no effect with"}},
      {"pmpd-gen-data", {gd + "--device gpu", "--device must be cpu, cuda or auto"}},
      {"pmpd-gen-data", {gd + "--num-docs 0", "must be >= 1"}},
      {"pmpd-gen-data", {gd + "--label-metric bleu", "must be rouge_l or excess_nll"}},
      {"pmpd-gen-data",
       {gd + "--label-metric excess_nll --branches sequential", "--branches has no effect"}},
      {"pmpd-gen-data", {gd + "--shard 3/2", "--shard 3/2: need 0 <= i < n"}},
      {"pmpd-gen-data",
       {gd + "--chat-template chatml", "--chat-template has no effect without --chat-instruction"}},
  };
  for (const auto& [tool, c] : cases) {
    SCOPED_TRACE(tool + " " + c.first);
    const RunResult r = RunTool(tool, c.first);
    testing::ExpectCleanFailure(r, tool, c.second);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(r.err.find("nonexistent"), std::string::npos) << "read a file first: " << r.err;
    EXPECT_EQ(r.out, "");
  }
  // With good flags the missing model itself is what is reported, by its flag.
  testing::ExpectCleanFailure(RunTool("pmpd-generate", gen), "pmpd-generate",
                              "--model /nonexistent: no such file or directory");
}

TEST(ConventionsCliTest, DeprecatedNamesStillWorkWithANotice) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  PMPD_REQUIRE_SHARED("data/text/tinystories_train_head2MiB.txt");
  const RunResult r =
      RunTool("pmpd-perplexity",
              absl::StrCat("--model ", testing::SharedPath("models/stories260K"), " --data ",
                           testing::SharedPath("data/text/tinystories_train_head2MiB.txt"),
                           " --max-docs 3 --seq-len 64 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("pmpd-perplexity: warning: --max-docs is deprecated; use --num-docs\n"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out).at("documents"), 3);
  // pmpd-eval's --n and --calib-n, pmpd-quantize's --calib-samples: the value reaches the new flag.
  RunResult e = RunTool("pmpd-eval", "--model /nonexistent --task tinystories --n 0");
  EXPECT_NE(e.err.find("warning: --n is deprecated; use --num-prompts"), std::string::npos);
  testing::ExpectCleanFailure(e, "pmpd-eval", "--num-prompts, --num-calib-prompts");
  e = RunTool("pmpd-eval", "--model /nonexistent --task tinystories --calib-n=0");
  EXPECT_NE(e.err.find("warning: --calib-n is deprecated; use --num-calib-prompts"),
            std::string::npos);
  testing::ExpectCleanFailure(e, "pmpd-eval", "--num-prompts, --num-calib-prompts");
  const RunResult q = RunTool("pmpd-quantize", "--model /m --out /o --calib /c --calib-samples 0");
  EXPECT_NE(q.err.find("warning: --calib-samples is deprecated; use --num-calib-seqs"),
            std::string::npos);
  testing::ExpectCleanFailure(q, "pmpd-quantize", "--num-calib-seqs >= 1, got 512 and 0");
}

// One small pipeline on stories260K through every tool with --json; each stdout must parse as
// one JSON document as a whole (pmpd-eval printed its markdown tables there too). Its classifiers
// then meet a model they were not trained for.
class JsonPipelineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::FileExistsForTest(testing::SharedPath("models/stories260K/config.json")) ||
        !testing::FileExistsForTest(
            testing::SharedPath("data/text/tinystories_train_head2MiB.txt"))) {
      return;
    }
    dir_ = new std::string(testing::MakeTempDir("json_pipeline"));
    outputs_ = new std::map<std::string, RunResult>();
    const std::string model = testing::SharedPath("models/stories260K");
    const std::string text = testing::SharedPath("data/text/tinystories_train_head2MiB.txt");
    const std::string& d = *dir_;
    auto run = [&](const std::string& key, const std::string& tool, const std::string& args) {
      (*outputs_)[key] = RunTool(tool, args);
    };
    run("quantize", "pmpd-quantize",
        absl::StrCat("--model ", model, " --out ", d, "/ap --parent-precision 4 --calib ", text,
                     " --num-calib-seqs 2 --seq-len 32 --threads 2 --json"));
    run("perplexity", "pmpd-perplexity",
        absl::StrCat("--model ", d, "/ap --precision 3 --data ", text,
                     " --num-docs 3 --seq-len 64 --json"));
    run("generate", "pmpd-generate",
        absl::StrCat("--model ", d,
                     "/ap --prompt 'Once upon a time' --max-new-tokens 8 "
                     "--precisions 4,3,2 --switch-steps 2,4 --json"));
    for (int i = 0; i < 2; ++i) {
      run(absl::StrCat("gen-data", i), "pmpd-gen-data",
          absl::StrCat("--model ", d, "/ap --c4 ", text, " --num-docs 12 --max-new-tokens 8 ",
                       "--precisions 4,3 --shard ", i, "/2 --out ", d, "/part", i, ".h5 --json"));
    }
    run("merge", "pmpd-gen-data",
        absl::StrCat("merge --out ", d, "/data.h5 ", d, "/part0.h5 ", d, "/part1.h5 --json"));
    run("train", "pmpd-train",
        absl::StrCat("--data ", d, "/data.h5 --precisions 4,3 --out ", d,
                     "/cls --epochs 2 --json"));
    testing::WriteFile(d + "/space.json",
                       R"({"params": [{"name": "epochs", "type": "int", "low": 1, "high": 2}]})");
    run("hypertune", "pmpd-hypertune",
        absl::StrCat("--data ", d, "/data.h5 --precisions 4,3 --out ", d,
                     "/tuned --trials 1 --noenqueue-defaults --space ", d, "/space.json --json"));
    run("eval", "pmpd-eval",
        absl::StrCat("--model ", d, "/ap --task tinystories --shared-dir ", testing::SharedDir(),
                     " --num-prompts 2 --max-new-tokens 6 --precisions 4,3 "
                     "--methods high,static,learned --switch-steps 3 --classifier ",
                     d, "/cls --json"));
  }
  static void TearDownTestSuite() {
    delete outputs_;
    outputs_ = nullptr;
  }
  void SetUp() override {
    PMPD_REQUIRE_SHARED("models/stories260K/config.json");
    PMPD_REQUIRE_SHARED("data/text/tinystories_train_head2MiB.txt");
  }
  static std::string* dir_;
  static std::map<std::string, RunResult>* outputs_;
};
std::string* JsonPipelineTest::dir_ = nullptr;
std::map<std::string, RunResult>* JsonPipelineTest::outputs_ = nullptr;

TEST_F(JsonPipelineTest, JsonPrintsOnlyJsonOnStdout) {
  for (const auto& [key, r] : *outputs_) {
    SCOPED_TRACE(key);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    nlohmann::json j;
    EXPECT_NO_THROW(j = nlohmann::json::parse(r.out)) << "stdout:\n" << r.out;
    EXPECT_TRUE(j.is_object()) << r.out;
  }
  // pmpd-eval's tables went to stderr, pmpd-quantize used its new seed precision default (2).
  EXPECT_NE(outputs_->at("eval").err.find("| learned |"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(outputs_->at("quantize").out).at("seed_precision"), 2);
  EXPECT_EQ(outputs_->at("quantize").err.find("no --calib"), std::string::npos);
  // Logs get whole progress lines, never carriage returns (stderr is a file here).
  for (const char* key : {"quantize", "perplexity", "gen-data0", "eval"}) {
    EXPECT_EQ(outputs_->at(key).err.find('\r'), std::string::npos) << key;
  }
  EXPECT_NE(outputs_->at("quantize").err.find("quantize: 5/5 layers (100%)"), std::string::npos)
      << outputs_->at("quantize").err;
  EXPECT_NE(outputs_->at("train").err.find("ETA <= "), std::string::npos);
  EXPECT_NE(outputs_->at("hypertune").err.find("[1/1, ETA 0 s]"), std::string::npos)
      << outputs_->at("hypertune").err;
}

// The classifiers' manifest records the fingerprint of the model that labelled their data
// (dir/ap); another checkpoint of the same shape is refused by pmpd-generate and pmpd-eval,
// naming the directory, both fingerprints and --force, which overrides it.
TEST_F(JsonPipelineTest, ClassifiersOfAnotherModelAreRefusedUnlessForced) {
  ASSERT_EQ(outputs_->at("train").exit_code, 0) << outputs_->at("train").err;
  const std::string& d = *dir_;
  const std::string other =
      testing::QuantizeForTest("other_model", testing::SharedPath("models/stories260K"), 2, 5);
  const auto manifest = nlohmann::json::parse(testing::ReadFile(d + "/cls/manifest.json"));
  const std::string recorded = manifest.at("model_fingerprint");
  ASSERT_FALSE(recorded.empty());
  const std::string gen = absl::StrCat(
      " --prompt 'Once upon a time' --max-new-tokens 4 "
      "--precisions 4,3 --scheduler learned --classifier ",
      d, "/cls --json");
  const RunResult refused = RunTool("pmpd-generate", "--model " + other + gen);
  testing::ExpectCleanFailure(refused, "pmpd-generate", d + "/cls: these classifiers were trained");
  for (const std::string& needle : {recorded, other + " has fingerprint ", std::string("--force")})
    EXPECT_NE(refused.err.find(needle), std::string::npos) << needle << "\n" << refused.err;
  EXPECT_EQ(refused.out, "");
  const RunResult forced = RunTool("pmpd-generate", "--model " + other + gen + " --force");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_EQ(RunTool("pmpd-generate", "--model " + d + "/ap" + gen).exit_code, 0) << "its own model";
  const std::string eval = absl::StrCat(" --task tinystories --shared-dir ", testing::SharedDir(),
                                        " --num-prompts 1 --max-new-tokens 4 --precisions 4,3 "
                                        "--methods learned --classifier ",
                                        d, "/cls --json");
  const RunResult eval_refused = RunTool("pmpd-eval", "--model " + other + eval);
  testing::ExpectCleanFailure(eval_refused, "pmpd-eval", "pass --force to use them anyway");
  EXPECT_EQ(RunTool("pmpd-eval", "--model " + other + eval + " --force").exit_code, 0);
}

}  // namespace
}  // namespace pmpd
