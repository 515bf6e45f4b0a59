#include "eval/evaluation.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "eval/eval_tasks.h"
#include "inference/llama_model.h"
#include "models/quantize_checkpoint.h"
#include "models/tokenizer.h"
#include "tests/test_util.h"

namespace pmpd::eval {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::RunBinary;
using pmpd::testing::SharedDir;
using pmpd::testing::WriteFile;

TEST(EvalTasksTest, TemplatesReferencesAndMetrics) {
  PMPD_REQUIRE_SHARED("data/eval/dialogsum.test.jsonl");
  auto cnn = LoadEvalTask("cnn_dm", SharedDir(), "", 0, 3);
  ASSERT_TRUE(cnn.ok()) << cnn.status();
  ASSERT_EQ(cnn->examples.size(), 3u);
  EXPECT_EQ(cnn->examples[0].prefix, "For the following article: ");
  EXPECT_EQ(cnn->examples[0].suffix, " Return a summary comprising of around 3 sentences.");
  EXPECT_EQ(cnn->examples[0].content.rfind("Summarize:", 0), std::string::npos);
  EXPECT_EQ(cnn->metric, QualityMetric::kRougeL);
  auto dialog = LoadEvalTask("dialogsum", SharedDir(), "", 0, 2);
  ASSERT_TRUE(dialog.ok());
  EXPECT_EQ(dialog->examples[0].references.size(), 3u);
  EXPECT_EQ(dialog->examples[0].suffix, " Return a summary comprising of 1 or 2 sentences.");
  auto iwslt = LoadEvalTask("iwslt", SharedDir(), "", 0, 30);
  ASSERT_TRUE(iwslt.ok());
  EXPECT_EQ(iwslt->metric, QualityMetric::kBleu);
  EXPECT_EQ(iwslt->examples[0].prefix, "Translate the following text from French to English: ");
  EXPECT_NE(iwslt->examples[0].references[0].find("TED"), std::string::npos);  // the English side
  auto stories = LoadEvalTask("tinystories", SharedDir(), "", 0, 5);
  ASSERT_TRUE(stories.ok());
  for (const auto& ex : stories->examples) {
    const char last = ex.content.back();
    EXPECT_TRUE(last == '.' || last == '!' || last == '?') << ex.content;
    EXPECT_FALSE(ex.references[0].empty());
  }
  // Splits are disjoint: skip = n gives the next examples.
  auto next = LoadEvalTask("tinystories", SharedDir(), "", 5, 5);
  ASSERT_TRUE(next.ok());
  EXPECT_NE(next->examples[0].content, stories->examples[0].content);
  auto c4 = LoadEvalTask("c4", SharedDir(), "", 0, 4);
  ASSERT_TRUE(c4.ok()) << c4.status();
  EXPECT_EQ(c4->examples.size(), 4u);
}

TEST(EvalTasksTest, BadInput) {
  auto unknown = LoadEvalTask("squad", "/x", "", 0, 1);
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown task \"squad\""), std::string::npos);
  const std::string dir = MakeTempDir("evaltask");
  WriteFile(dir + "/empty.jsonl", "\n");
  auto empty = LoadEvalTask("dialogsum", "/x", dir + "/empty.jsonl", 0, 1);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty data file"), std::string::npos) << empty.status();
  WriteFile(dir + "/bad.jsonl", "{\"dialogue\": \"hi\", \"summary1\": \"s\"}\nnot json\n");
  auto bad = LoadEvalTask("dialogsum", "/x", dir + "/bad.jsonl", 0, 5);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("bad.jsonl:2: not a JSON object"), std::string::npos)
      << bad.status();
  WriteFile(dir + "/nofield.jsonl", "{\"text\": \"hi\"}\n");
  auto nofield = LoadEvalTask("iwslt", "/x", dir + "/nofield.jsonl", 0, 5);
  ASSERT_FALSE(nofield.ok());
  EXPECT_NE(nofield.status().message().find("missing string field"), std::string::npos);
  auto missing = LoadEvalTask("cnn_dm", "/x", dir + "/nope.jsonl", 0, 5);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.jsonl"), std::string::npos);
}

TEST(EvaluationTest, QualityAndFitPrompts) {
  EXPECT_DOUBLE_EQ(Quality(QualityMetric::kRougeL, {"the cat sat"}, {{"the cat sat"}}), 100.0);
  EXPECT_DOUBLE_EQ(Quality(QualityMetric::kRougeL, {"a b", "x y"}, {{"a b"}, {"z w"}}), 50.0);
  EXPECT_NEAR(Quality(QualityMetric::kBleu, {"the cat sat on the mat today"},
                      {{"the cat sat on the mat today"}}),
              100.0, 1e-9);
  EXPECT_EQ(Score(QualityMetric::kRougeL, {"a b", "x y"}, {{"a b"}, {"z w"}}).per_example,
            (std::vector<double>{100.0, 0.0}));
  EXPECT_TRUE(Score(QualityMetric::kBleu, {"a b"}, {{"a b"}}).per_example.empty());
  // Paired differences by hand: a - b = {1, 3, 2, 6}: mean 3, sample sd sqrt(14/3), se sd / 2.
  const PairedDifference d = Paired({11, 13, 12, 16}, {10, 10, 10, 10});
  EXPECT_EQ(d.n, 4);
  EXPECT_DOUBLE_EQ(d.mean, 3.0);
  EXPECT_DOUBLE_EQ(d.standard_error, std::sqrt(14.0 / 3.0) / 2.0);
  EXPECT_EQ(Paired({1, 2}, {1}).n, 0);
  EXPECT_EQ(Paired({1}, {1}).n, 0);
  PMPD_REQUIRE_SHARED("data/eval/cnn_dm.specbench80.jsonl");
  auto cnn = LoadEvalTask("cnn_dm", SharedDir(), "", 0, 4);
  ASSERT_TRUE(cnn.ok());
  auto tok = models::Tokenizer::Load(pmpd::testing::SharedPath("models/stories260K"));
  ASSERT_TRUE(tok.ok());
  const auto prompts = FitPrompts(*cnn, **tok, 512, 128);
  EXPECT_EQ(prompts.chat_template, "none");
  EXPECT_TRUE(prompts.stop_ids.empty());
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_LE(prompts.ids[i].size(), 384u);
    EXPECT_GT(prompts.ids[i].size(), 300u);  // shortened, not emptied
    // The instruction survives the cut.
    EXPECT_NE(
        (*tok)->Decode(prompts.ids[i]).find("Return a summary comprising of around 3 sentences."),
        std::string::npos);
  }
  // In a chat template the budget counts the template's tokens: the conversation fits and still
  // ends with the instruction and the opened assistant turn.
  for (const char* name : {"llama2", "vicuna"}) {
    auto chat = models::ChatTemplate::FromName(name);
    ASSERT_TRUE(chat.ok());
    const auto in_chat = FitPrompts(*cnn, **tok, 512, 128, &*chat);
    EXPECT_EQ(in_chat.chat_template, name);
    EXPECT_EQ(in_chat.stop_ids, std::vector<int>({(*tok)->eos_id()}));
    ASSERT_EQ(in_chat.size(), prompts.size());
    for (size_t i = 0; i < in_chat.size(); ++i) {
      EXPECT_LE(in_chat.ids[i].size(), 384u) << name;
      EXPECT_GT(in_chat.ids[i].size(), 300u) << name;
      const std::string text = (*tok)->Decode(in_chat.ids[i]);
      const std::string end = std::string(name) == "llama2" ? "around 3 sentences. [/INST]"
                                                            : "around 3 sentences. ASSISTANT:";
      ASSERT_GE(text.size(), end.size());
      EXPECT_EQ(text.substr(text.size() - end.size()), end) << name;
    }
  }
}

// pmpd-eval end to end on every task sample, on stories260K quantized (S = 2, P = 4).
class PmpdEvalCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!pmpd::testing::FileExistsForTest(
            pmpd::testing::SharedPath("models/stories260K/config.json")))
      return;
    dir_ = new std::string(MakeTempDir("eval_ap"));
    models::QuantizeCheckpointOptions o;
    o.quant.seed_bits = 2;
    o.quant.parent_bits = 4;
    models::QuantizeReport report;
    ASSERT_TRUE(models::QuantizeCheckpoint(pmpd::testing::SharedPath("models/stories260K"), *dir_,
                                           o, {}, {}, &report)
                    .ok());
  }
  static std::string* dir_;
};
std::string* PmpdEvalCliTest::dir_ = nullptr;

TEST_F(PmpdEvalCliTest, RunsOnEveryTask) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  for (const char* task : {"tinystories", "c4", "cnn_dm", "dialogsum", "iwslt"}) {
    const std::string out = MakeTempDir(absl::StrCat("eval_", task));
    const auto r =
        RunBinary("cli/pmpd-eval",
                  absl::StrCat("--model ", *dir_, " --task ", task, " --shared-dir ", SharedDir(),
                               " --num-prompts 2 --max-new-tokens 8 --precisions 4,3 "
                               "--methods high,low,static --switch-steps 4 "
                               "--json --out ",
                               out));
    ASSERT_EQ(r.exit_code, 0) << task << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    ASSERT_EQ(j.at("rows").size(), 3u) << task;
    const std::string q = std::string(task) == "iwslt" ? "bleu" : "rouge_l";
    EXPECT_DOUBLE_EQ(j["rows"][0].at("avg_bits").get<double>(), 4.0);
    EXPECT_DOUBLE_EQ(j["rows"][1].at("avg_bits").get<double>(), 3.0);
    EXPECT_DOUBLE_EQ(j["rows"][2].at("avg_bits").get<double>(), (4 * 4 + 4 * 3) / 8.0);
    for (const auto& row : j["rows"]) {
      EXPECT_GE(row.at(q).get<double>(), 0.0) << task;
      EXPECT_GT(row.at("tokens_per_s").get<double>(), 0.0);
    }
    EXPECT_EQ(pmpd::testing::ReadFile(out + "/quality_vs_bits.svg").rfind("<svg", 0), 0u);
    EXPECT_NE(pmpd::testing::ReadFile(out + "/results.csv").find("method,schedule"),
              std::string::npos);
  }
}

TEST_F(PmpdEvalCliTest, CalibratesStaticOnADisjointSplit) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const auto r =
      RunBinary("cli/pmpd-eval",
                absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                             " --num-prompts 3 --num-calib-prompts 3 --max-new-tokens 16 "
                             "--precisions 4,3 --methods static "
                             "--calibrate-static --reference model --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  ASSERT_TRUE(j.contains("calibration"));
  EXPECT_EQ(j["calibration"].at("candidates").size(),
            2u * 6u);  // prefill {4,3} x grid {0,2,4,8,12,16}
  // The choice is feasible on the calibration split and has the fewest bits among feasible ones.
  const double q_ref = j["calibration"].at("reference_quality").get<double>();
  double best_bits = 1e9;
  for (const auto& c : j["calibration"]["candidates"]) {
    if (c.at("quality").get<double>() >= q_ref - 1.0)
      best_bits = std::min(best_bits, c.at("avg_bits").get<double>());
  }
  ASSERT_LT(best_bits, 1e9);
  bool chosen_found = false;
  for (const auto& c : j["calibration"]["candidates"]) {
    const std::string want =
        absl::StrCat("prefill ", j["calibration"]["prefill_precision"].get<int>(),
                     ", decode 4->3 at ", j["calibration"]["switch_steps"][0].get<int>());
    if (c.at("schedule") == want) {
      chosen_found = true;
      EXPECT_DOUBLE_EQ(c.at("avg_bits").get<double>(), best_bits);
    }
  }
  EXPECT_TRUE(chosen_found);
}

// --calibrate-learned on the reference-format classifier (it reads stories260K's 4 KV heads of
// dim 8): every grid quantile is tried on the calibration split and the choice follows the rule;
// static-bits keeps within the static schedule's bits there; learned-sweep adds one row per
// quantile and an orange curve to the plot.
// A bit budget strictly between two grid quantiles' bits: CalibrateLearned bisects that bracket
// kLearnedQuantileRefinements times (each refinement halves the bracket its bits put it in), and
// the choice is the best quality among every candidate within the budget, closer to it than the
// grid alone comes.
TEST_F(PmpdEvalCliTest, BudgetCalibrationBisectsBetweenGridQuantiles) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string cls = pmpd::testing::SourcePath("tests/golden/reference_classifier");
  auto model = inference::LlamaModel::Load(*dir_);
  auto tok = models::Tokenizer::Load(*dir_);
  auto task = LoadEvalTask("tinystories", SharedDir(), "", 0, 6);
  ASSERT_TRUE(model.ok() && tok.ok() && task.ok());
  const EvalPrompts prompts = FitPrompts(*task, **tok, (*model)->max_context(), 24);
  std::vector<std::vector<std::string>> refs;
  for (const auto& e : task->examples) refs.push_back(e.references);
  const std::vector<int> ladder = {4, 3};
  auto grid = CalibrateLearned(**model, **tok, ladder, cls, prompts, refs, QualityMetric::kRougeL,
                               24, 1.0, /*max_avg_bits=*/-1, /*reference_quality=*/0);
  ASSERT_TRUE(grid.ok()) << grid.status();
  ASSERT_EQ(grid->candidates.size(), std::size(kLearnedQuantileGrid));  // no budget: grid only
  // Two neighbouring grid quantiles with different bits; the budget halfway between them.
  size_t k = 0;
  for (size_t i = 1; i + 1 < grid->candidates.size(); ++i) {
    if (grid->candidates[i + 1].avg_bits > grid->candidates[i].avg_bits + 1e-6) {
      k = i;
      break;
    }
  }
  ASSERT_GT(k, 0u) << "every quantile gives the same bits: no bracket to test";
  const double budget = 0.5 * (grid->candidates[k].avg_bits + grid->candidates[k + 1].avg_bits);
  auto cal = CalibrateLearned(**model, **tok, ladder, cls, prompts, refs, QualityMetric::kRougeL,
                              24, 1.0, budget, 0);
  ASSERT_TRUE(cal.ok()) << cal.status();
  const size_t g = std::size(kLearnedQuantileGrid);
  ASSERT_EQ(cal->candidates.size(), g + kLearnedQuantileRefinements);
  ASSERT_EQ(cal->candidate_quantiles.size(), cal->candidates.size());
  double lo = kLearnedQuantileGrid[k], hi = kLearnedQuantileGrid[k + 1];
  for (size_t i = g; i < cal->candidates.size(); ++i) {
    const double q = cal->candidate_quantiles[i];
    EXPECT_DOUBLE_EQ(q, 0.5 * (lo + hi)) << "refinement " << i - g;
    const double bits = cal->candidates[i].avg_bits;
    // Bits grow with the quantile: a refinement's bits lie within its bracket's.
    EXPECT_GE(bits, grid->candidates[k].avg_bits - 1e-9);
    EXPECT_LE(bits, grid->candidates[k + 1].avg_bits + 1e-9);
    (bits <= budget + 1e-9 ? lo : hi) = q;
  }
  double best = -1;
  for (const auto& c : cal->candidates) {
    if (c.avg_bits <= budget + 1e-9) best = std::max(best, c.quality);
  }
  EXPECT_DOUBLE_EQ(cal->chosen_row.quality, best);
  EXPECT_LE(cal->chosen_row.avg_bits, budget + 1e-9);
  EXPECT_NE(cal->chosen_row.schedule.find(FormatQuantile(cal->chosen.switch_quantile)),
            std::string::npos);
  EXPECT_EQ(FormatQuantile(0.2), "0.20");
  EXPECT_EQ(FormatQuantile(0.1125), "0.1125");
  EXPECT_EQ(FormatQuantile(0.15), "0.15");
}

TEST_F(PmpdEvalCliTest, CalibratesTheLearnedSwitchQuantile) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string cls = pmpd::testing::SourcePath("tests/golden/reference_classifier");
  auto run = [&](const std::string& out, const std::string& extra) {
    const auto r =
        RunBinary("cli/pmpd-eval",
                  absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                               " --num-prompts 2 --num-calib-prompts 2 --max-new-tokens 12 "
                               "--precisions 4,3 --reference model "
                               "--classifier ",
                               cls, " --json --out ", out, " ", extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out.substr(r.out.find('{')))
                            : nlohmann::json();
  };
  const auto j =
      run(MakeTempDir("eval_learned_q"), "--methods learned --calibrate-learned quality");
  ASSERT_TRUE(j.contains("learned_calibration")) << j;
  const auto& lc = j["learned_calibration"];
  ASSERT_EQ(lc.at("candidates").size(), std::size(kLearnedQuantileGrid));
  const double q_ref = lc.at("reference_quality").get<double>();
  double best_bits = 1e9;
  for (const auto& c : lc["candidates"]) {
    if (c.at("quality").get<double>() >= q_ref - 1.0)
      best_bits = std::min(best_bits, c.at("avg_bits").get<double>());
  }
  const double q = lc.at("switch_quantile").get<double>();
  ASSERT_EQ(j.at("rows").size(), 1u);
  const std::string schedule = j["rows"][0].at("schedule");
  EXPECT_NE(schedule.find("learned 4->3"), std::string::npos) << schedule;
  if (best_bits < 1e9) {
    bool found = false;
    for (const auto& c : lc["candidates"]) {
      if (c.at("schedule") == schedule) {  // the chosen candidate, by its description
        found = true;
        EXPECT_DOUBLE_EQ(c.at("avg_bits").get<double>(), best_bits);
      }
    }
    EXPECT_TRUE(found) << schedule << " quantile " << q;
  }

  // static-bits: within the calibrated static schedule's bits on the same prompts.
  const std::string out = MakeTempDir("eval_learned_bits");
  const auto b = run(
      out,
      "--methods static,learned,learned-sweep --calibrate-static --calibrate-learned static-bits");
  ASSERT_TRUE(b.contains("learned_calibration")) << b;
  const double budget = b["learned_calibration"].at("max_avg_bits").get<double>();
  for (const auto& c : b["calibration"]["candidates"]) {
    const std::string want =
        absl::StrCat("prefill ", b["calibration"]["prefill_precision"].get<int>(),
                     ", decode 4->3 at ", b["calibration"]["switch_steps"][0].get<int>());
    if (c.at("schedule") == want) {
      EXPECT_DOUBLE_EQ(c.at("avg_bits").get<double>(), budget);
    }
  }
  // The grid, then bisection between the grid's last quantile within the budget and the next one
  // (when some grid quantile exceeds it): each refinement lies inside the bracket it halves.
  const auto& lcands = b["learned_calibration"]["candidates"];
  std::vector<std::pair<double, double>> grid_q_bits;  // (quantile, bits) of the grid quantiles > 0
  for (size_t i = 0; i < std::size(kLearnedQuantileGrid); ++i) {
    EXPECT_DOUBLE_EQ(lcands[i].at("switch_quantile").get<double>(), kLearnedQuantileGrid[i]);
    if (kLearnedQuantileGrid[i] > 0)
      grid_q_bits.emplace_back(kLearnedQuantileGrid[i], lcands[i].at("avg_bits").get<double>());
  }
  double lo = 0, hi = -1;
  for (const auto& [q, bits] : grid_q_bits) {
    if (bits <= budget + 1e-9) lo = std::max(lo, q);
  }
  for (const auto& [q, bits] : grid_q_bits) {
    if (q > lo && bits > budget + 1e-9 && (hi < 0 || q < hi)) hi = q;
  }
  ASSERT_EQ(lcands.size(),
            std::size(kLearnedQuantileGrid) + (hi < 0 ? 0 : kLearnedQuantileRefinements));
  for (size_t i = std::size(kLearnedQuantileGrid); i < lcands.size(); ++i) {
    const double q = lcands[i].at("switch_quantile").get<double>();
    EXPECT_DOUBLE_EQ(q, 0.5 * (lo + hi)) << "refinement " << i;
    EXPECT_NE(lcands[i].at("schedule").get<std::string>().find("at quantile " + FormatQuantile(q)),
              std::string::npos);
    (lcands[i].at("avg_bits").get<double>() <= budget + 1e-9 ? lo : hi) = q;
  }
  std::printf("static-bits budget %.4f: %zu learned candidates\n", budget, lcands.size());
  // The learned calibration reuses the static one's uniform-high run.
  EXPECT_DOUBLE_EQ(b["learned_calibration"].at("reference_quality").get<double>(),
                   b["calibration"].at("reference_quality").get<double>());
  double best_q = -1;
  for (const auto& c : b["learned_calibration"]["candidates"]) {
    if (c.at("avg_bits").get<double>() <= budget + 1e-9)
      best_q = std::max(best_q, c.at("quality").get<double>());
  }
  const auto& rows = b.at("rows");
  ASSERT_EQ(rows.size(), 2u + 9u);
  EXPECT_EQ(rows[1].at("method"), "learned");
  for (int i = 0; i < 9; ++i) {
    EXPECT_EQ(rows[2 + i].at("method"), absl::StrFormat("learned-q%.1f", 0.1 * (i + 1)));
    EXPECT_NE(rows[2 + i]
                  .at("schedule")
                  .get<std::string>()
                  .find(absl::StrFormat("at quantile %.2f", 0.1 * (i + 1))),
              std::string::npos);
  }
  // The choice: the best quality within the budget, else (nothing within it) the fewest bits.
  double min_bits = 1e9;
  for (const auto& c : b["learned_calibration"]["candidates"])
    min_bits = std::min(min_bits, c.at("avg_bits").get<double>());
  bool chosen_found = false;
  for (const auto& c : b["learned_calibration"]["candidates"]) {
    if (c.at("schedule") != rows[1].at("schedule")) continue;
    chosen_found = true;
    if (best_q >= 0) {
      EXPECT_DOUBLE_EQ(c.at("quality").get<double>(), best_q);
    } else {
      EXPECT_DOUBLE_EQ(c.at("avg_bits").get<double>(), min_bits);
    }
  }
  EXPECT_TRUE(chosen_found) << rows[1];
  const std::string svg = pmpd::testing::ReadFile(out + "/quality_vs_bits.svg");
  EXPECT_NE(svg.find("orange curve: learned at switch quantiles"), std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1))
    ++polylines;
  EXPECT_EQ(polylines, 2u);

  pmpd::testing::ExpectCleanFailure(
      RunBinary("cli/pmpd-eval",
                absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                             " --num-prompts 1 --methods learned --classifier ", cls,
                             " --calibrate-learned static-bits")),
      "pmpd-eval", "needs --calibrate-static");
  pmpd::testing::ExpectCleanFailure(
      RunBinary("cli/pmpd-eval",
                absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                             " --num-prompts 1 --methods learned --classifier ", cls,
                             " --switch-quantile 1.5")),
      "pmpd-eval", "--switch-quantile 1.5");
  pmpd::testing::ExpectCleanFailure(
      RunBinary("cli/pmpd-eval",
                absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                             " --num-prompts 1 --methods learned --classifier ", cls,
                             " --calibrate-learned fewest")),
      "pmpd-eval", "--calibrate-learned \"fewest\"");
}

TEST_F(PmpdEvalCliTest, AppliesTheChatTemplateAndRecordsIt) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  auto run = [&](const std::string& extra) {
    const auto r =
        RunBinary("cli/pmpd-eval",
                  absl::StrCat("--model ", *dir_, " --task dialogsum --shared-dir ", SharedDir(),
                               " --num-prompts 1 --max-new-tokens 4 --precisions 4,3 "
                               "--methods high --reference model --json ",
                               extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out.substr(r.out.find('{')))
                            : nlohmann::json();
  };
  // stories260K ships no chat template: auto means plain prompts.
  EXPECT_EQ(run("").value("chat_template", ""), "none");
  EXPECT_EQ(run("--chat-template vicuna").value("chat_template", ""), "vicuna");
  pmpd::testing::ExpectCleanFailure(
      RunBinary("cli/pmpd-eval",
                absl::StrCat("--model ", *dir_, " --task dialogsum --shared-dir ", SharedDir(),
                             " --num-prompts 1 --chat-template gemma")),
      "pmpd-eval", "unknown chat template \"gemma\"");
}

// --methods uniform: one row per precision of the ladder. --reference both: a second score against
// the model's own greedy output at its parent precision (4 here), so uniform-4 scores exactly 100
// against it; the CSV gains quality_vs_model, and the plot joins the uniform rows.
TEST_F(PmpdEvalCliTest, UniformRowsAndBothReferences) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  auto run = [&](const std::string& out, const std::string& extra) {
    const auto r = RunBinary(
        "cli/pmpd-eval",
        absl::StrCat("--model ", *dir_, " --task tinystories --shared-dir ", SharedDir(),
                     " --num-prompts 3 --max-new-tokens 16 --json --out ", out, " ", extra));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out.substr(r.out.find('{')))
                            : nlohmann::json();
  };
  const std::string out = MakeTempDir("eval_uniform_both");
  const auto j =
      run(out, "--precisions 4,3,2 --methods uniform,static --switch-steps 4,8 --reference both");
  ASSERT_EQ(j.value("rows", nlohmann::json::array()).size(), 4u);
  for (int p = 4; p >= 2; --p) {
    const auto& row = j["rows"][4 - p];
    EXPECT_EQ(row.at("method"), absl::StrCat("uniform-", p));
    EXPECT_EQ(row.at("schedule"), absl::StrCat("prefill ", p, ", decode ", p));
    EXPECT_DOUBLE_EQ(row.at("avg_bits").get<double>(), p);
    ASSERT_TRUE(row.at("rouge_l_vs_model").is_number()) << row;
    EXPECT_GE(row.at("rouge_l_vs_model").get<double>(), 0.0);
  }
  EXPECT_EQ(j["rows"][3].at("method"), "static");
  // The model reference is uniform-4's own output: identical text, Rouge-L 100 exactly.
  EXPECT_EQ(j["rows"][0].at("rouge_l_vs_model").get<double>(), 100.0);
  EXPECT_EQ(j.at("reference"), "both");
  const auto file = nlohmann::json::parse(pmpd::testing::ReadFile(out + "/results.json"));
  EXPECT_EQ(file.at("rows"), j.at("rows"));
  // Per-example scores whose means are the rows' scores, and every row paired with the static one:
  // the mean paired difference is the difference of the means.
  const auto& st = j["rows"][3];
  EXPECT_TRUE(st.at("paired_vs_static").is_null());
  for (const auto& row : j["rows"]) {
    const auto& ex = row.at("per_example");
    for (const char* k : {"avg_bits", "rouge_l", "rouge_l_vs_model"}) {
      ASSERT_EQ(ex.at(k).size(), 3u) << k;
      double mean = 0;
      for (double v : ex.at(k).get<std::vector<double>>()) mean += v / 3;
      if (std::string(k) != "avg_bits") {  // avg_bits weighs tokens, not examples
        EXPECT_NEAR(mean, row.at(k).get<double>(), 1e-9) << k;
      }
    }
    if (row.at("method") == "static") continue;
    for (const char* k : {"rouge_l", "rouge_l_vs_model"}) {
      const auto& p = row.at("paired_vs_static").at(k);
      EXPECT_EQ(p.at("n").get<int>(), 3);
      EXPECT_NEAR(p.at("mean_difference").get<double>(),
                  row.at(k).get<double>() - st.at(k).get<double>(), 1e-9)
          << row.at("method") << " " << k;
      EXPECT_GE(p.at("standard_error").get<double>(), 0.0);
    }
  }

  const std::string csv = pmpd::testing::ReadFile(out + "/results.csv");
  ASSERT_EQ(
      csv.rfind("method,schedule,examples,avg_bits,quality,quality_vs_model,tokens_per_s\n", 0), 0u)
      << csv;
  EXPECT_NE(csv.find("\nuniform-4,\"prefill 4, decode 4\",3,4.0000,"), std::string::npos) << csv;
  EXPECT_NE(csv.find(absl::StrFormat(",%.4f,100.0000,", j["rows"][0].at("rouge_l").get<double>())),
            std::string::npos)
      << csv;

  // The plot: one circle per row (in row order); the dashed line passes through the uniform rows'
  // circles by increasing bits and not through the static row's.
  const std::string svg = pmpd::testing::ReadFile(out + "/quality_vs_bits.svg");
  std::vector<std::string> circles;
  const std::regex circle("<circle cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), circle); it != std::sregex_iterator();
       ++it)
    circles.push_back(absl::StrCat((*it)[1].str(), ",", (*it)[2].str()));
  ASSERT_EQ(circles.size(), 4u) << svg;
  std::smatch line;
  ASSERT_TRUE(std::regex_search(svg, line, std::regex("<polyline points=\"([^\"]*)\""))) << svg;
  const std::vector<std::string> points = absl::StrSplit(line[1].str(), ' ', absl::SkipEmpty());
  EXPECT_EQ(points, (std::vector<std::string>{circles[2], circles[1], circles[0]})) << svg;

  // --reference dataset (the default): no second score anywhere.
  const std::string plain = MakeTempDir("eval_uniform_dataset");
  const auto d = run(plain, "--methods uniform --precisions 4,2");
  // 4, 3, 2: every precision from the first to the last.
  ASSERT_EQ(d.value("rows", nlohmann::json::array()).size(), 3u);
  for (const auto& row : d["rows"]) EXPECT_TRUE(row.at("rouge_l_vs_model").is_null()) << row;
  EXPECT_EQ(pmpd::testing::ReadFile(plain + "/results.csv").find("quality_vs_model"),
            std::string::npos);
}

TEST_F(PmpdEvalCliTest, BadInputFailsCleanly) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  auto expect_fail = [&](const std::string& args, const std::string& needle) {
    SCOPED_TRACE(args);
    pmpd::testing::ExpectCleanFailure(
        RunBinary("cli/pmpd-eval",
                  absl::StrCat("--model ", *dir_, " --shared-dir ", SharedDir(), " ", args)),
        "pmpd-eval", needle);
  };
  expect_fail("--task squad --methods high", "unknown task \"squad\"");
  // Issue 16: the static method without its switch steps failed only after the model loaded.
  expect_fail("--task tinystories", "the static method needs --switch-steps");
  expect_fail("--task tinystories --num-prompts 0",
              "--num-prompts, --num-calib-prompts and --max-new-tokens must be >= 1");
  expect_fail("--task tinystories --precisions 4,3,2 --switch-steps 8,4 --num-prompts 1",
              "non-decreasing");
  expect_fail("--task tinystories --precisions 5,3 --switch-steps 4 --num-prompts 1",
              "precision 5 is missing from");
  const std::string dir = MakeTempDir("eval_bad");
  WriteFile(dir + "/empty.jsonl", "");
  expect_fail(absl::StrCat("--task dialogsum --methods high --data ", dir, "/empty.jsonl"),
              "empty data file");
  expect_fail("--task tinystories --methods learned", "needs --classifier DIR");
  expect_fail("--task tinystories --methods learned --classifier /nonexistent --num-prompts 1",
              "/nonexistent has neither manifest.json");
}

}  // namespace
}  // namespace pmpd::eval
