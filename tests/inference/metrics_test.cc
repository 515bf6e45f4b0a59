// Rouge-L and BLEU against the Python references (rouge-score 0.1.2 + NLTK Porter, sacrebleu 2.6.0)
// stored in tests/golden/metrics.json by scripts/make_metrics_golden.py, plus hand-computed cases.
//
// Tolerances: Rouge values are ratios of small integers combined in the same order as rouge-score,
// so they agree to the last bit; 1e-12 leaves room for nothing but a changed formula. BLEU is
// exp(mean of 4 logs) * 100 in sacrebleu's order of operations; glibc's log/exp are the same
// functions Python calls, and 1e-9 absolute on a 0..100 score is ~7e4 ulps of slack.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "inference/metrics/bleu.h"
#include "inference/metrics/rouge.h"
#include "tests/test_util.h"

namespace pmpd::metrics {
namespace {

using json = nlohmann::json;

constexpr double kRougeTol = 1e-12;
constexpr double kBleuTol = 1e-9;

const json& Golden() {
  static const json* const golden = new json(
      json::parse(pmpd::testing::ReadFile(pmpd::testing::SourcePath("tests/golden/metrics.json"))));
  return *golden;
}

std::vector<std::string> Strings(const json& j) { return j.get<std::vector<std::string>>(); }

void ExpectRouge(const json& want, const RougeScore& got, const std::string& what) {
  EXPECT_NEAR(got.precision, want.at("precision").get<double>(), kRougeTol) << what;
  EXPECT_NEAR(got.recall, want.at("recall").get<double>(), kRougeTol) << what;
  EXPECT_NEAR(got.fmeasure, want.at("fmeasure").get<double>(), kRougeTol) << what;
}

void ExpectBleu(const json& want, const BleuScore& got, const std::string& what) {
  EXPECT_NEAR(got.score, want.at("score").get<double>(), kBleuTol) << what;
  EXPECT_NEAR(got.bp, want.at("bp").get<double>(), 1e-12) << what;
  EXPECT_EQ(got.sys_len, want.at("sys_len").get<int64_t>()) << what;
  EXPECT_EQ(got.ref_len, want.at("ref_len").get<int64_t>()) << what;
  EXPECT_EQ(got.counts, want.at("counts").get<std::vector<int64_t>>()) << what;
  EXPECT_EQ(got.totals, want.at("totals").get<std::vector<int64_t>>()) << what;
  const auto precisions = want.at("precisions").get<std::vector<double>>();
  ASSERT_EQ(got.precisions.size(), precisions.size()) << what;
  for (size_t n = 0; n < precisions.size(); ++n) {
    EXPECT_NEAR(got.precisions[n], precisions[n], 1e-10) << what << " precision " << n + 1;
  }
}

// ---- golden comparisons -----------------------------------------------------------------------

TEST(PorterStemTest, MatchesNltkOnGoldenWords) {
  const json& cases = Golden().at("porter");
  ASSERT_GT(cases.size(), 1000u);
  int mismatches = 0;
  for (const json& c : cases) {
    const std::string word = c[0].get<std::string>(), want = c[1].get<std::string>();
    const std::string got = PorterStem(word);
    if (got != want && ++mismatches <= 20)
      ADD_FAILURE() << word << ": want " << want << ", got " << got;
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases.size() << " words";
}

TEST(RougeTokenizeTest, MatchesRougeScoreTokenizer) {
  for (const json& c : Golden().at("rouge_tokenize")) {
    const std::string text = c.at("text").get<std::string>();
    EXPECT_EQ(RougeTokenize(text, /*stem=*/false), Strings(c.at("tokens"))) << text;
    EXPECT_EQ(RougeTokenize(text, /*stem=*/true), Strings(c.at("stemmed"))) << text;
  }
}

TEST(RougeLTest, MatchesRougeScoreOnGoldenPairs) {
  const json& cases = Golden().at("rouge");
  ASSERT_GT(cases.size(), 40u);
  for (const json& c : cases) {
    const std::string target = c.at("target").get<std::string>();
    const std::string prediction = c.at("prediction").get<std::string>();
    ExpectRouge(c, RougeL(target, prediction), "target: " + target + "\nprediction: " + prediction);
  }
}

TEST(RougeLTest, MaxMatchesScoreMulti) {
  for (const json& c : Golden().at("rouge_multi")) {
    const std::string prediction = c.at("prediction").get<std::string>();
    ExpectRouge(c, RougeLMax(Strings(c.at("targets")), prediction), "prediction: " + prediction);
  }
}

TEST(Tokenize13aTest, MatchesSacrebleu) {
  for (const json& c : Golden().at("tokenize_13a")) {
    const std::string line = c[0].get<std::string>();
    EXPECT_EQ(Tokenize13a(line), c[1].get<std::string>()) << "line: " << line;
  }
}

TEST(BleuTest, CorpusBleuMatchesSacrebleu) {
  for (const json& c : Golden().at("corpus_bleu")) {
    std::vector<std::vector<std::string>> refs;
    for (const json& stream : c.at("references")) refs.push_back(Strings(stream));
    ExpectBleu(c, CorpusBleu(Strings(c.at("hypotheses")), refs), c.at("name").get<std::string>());
  }
}

TEST(BleuTest, SentenceBleuMatchesSacrebleu) {
  for (const json& c : Golden().at("sentence_bleu")) {
    const std::string hyp = c.at("hypothesis").get<std::string>();
    ExpectBleu(c, SentenceBleu(hyp, Strings(c.at("references"))), "hypothesis: " + hyp);
  }
}

// ---- hand-computed cases ----------------------------------------------------------------------

TEST(RougeLTest, HandComputedLcs) {
  // Tokens a b c d e f vs a c e x: LCS "a c e" = 3; P = 3/4, R = 3/6, F = 2PR/(P+R) = 0.6.
  const RougeScore s = RougeL("a b c d e f", "a c e x");
  EXPECT_DOUBLE_EQ(s.precision, 0.75);
  EXPECT_DOUBLE_EQ(s.recall, 0.5);
  EXPECT_DOUBLE_EQ(s.fmeasure, 0.6);
  // Reversal keeps one token in common.
  const RougeScore r = RougeL("a b c d", "d c b a");
  EXPECT_DOUBLE_EQ(r.precision, 0.25);
  EXPECT_DOUBLE_EQ(r.recall, 0.25);
  // Stemming makes "running runs" match "run run".
  EXPECT_DOUBLE_EQ(RougeL("running runs", "run run").fmeasure, 1.0);
}

TEST(RougeLTest, IdenticalGivesOneDisjointGivesZero) {
  const RougeScore same = RougeL("The same sentence, twice.", "the SAME sentence twice");
  EXPECT_EQ(same.precision, 1.0);
  EXPECT_EQ(same.recall, 1.0);
  EXPECT_EQ(same.fmeasure, 1.0);
  const RougeScore none = RougeL("alpha beta", "gamma delta");
  EXPECT_EQ(none.precision, 0.0);
  EXPECT_EQ(none.recall, 0.0);
  EXPECT_EQ(none.fmeasure, 0.0);
}

TEST(RougeLTest, EmptySideGivesZeroWithoutNan) {
  for (const auto& [t, p] : std::vector<std::pair<std::string, std::string>>{
           {"target words", ""}, {"", "prediction words"}, {"", ""}, {"!!!", "???"}, {"é", "ü"}}) {
    const RougeScore s = RougeL(t, p);
    EXPECT_EQ(s.precision, 0.0) << t << " | " << p;
    EXPECT_EQ(s.recall, 0.0) << t << " | " << p;
    EXPECT_EQ(s.fmeasure, 0.0) << t << " | " << p;
  }
  const RougeScore none = RougeLMax({}, "anything");
  EXPECT_EQ(none.fmeasure, 0.0);
}

TEST(RougeLTest, MaxPicksHighestFmeasure) {
  const RougeScore s = RougeLMax({"x y z", "a b c", "a b"}, "a b c");
  EXPECT_EQ(s.fmeasure, 1.0);
}

TEST(RougeTokenizeTest, NonAsciiLettersSeparateTokens) {
  EXPECT_EQ(RougeTokenize("café naïve", false), (std::vector<std::string>{"caf", "na", "ve"}));
  // Python lowercases U+0130 to "i" + U+0307 and the Kelvin sign to "k".
  EXPECT_EQ(RougeTokenize("\xC4\xB0stanbul 5\xE2\x84\xAA", false),
            (std::vector<std::string>{"i", "stanbul", "5k"}));
  // Invalid UTF-8 bytes separate too.
  EXPECT_EQ(RougeTokenize("ab\xFF"
                          "cd\xC3",
                          false),
            (std::vector<std::string>{"ab", "cd"}));
}

TEST(PorterStemTest, PaperExamples) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"caresses", "caress"},  {"ponies", "poni"},    {"agreed", "agre"},
      {"feed", "feed"},        {"motoring", "motor"}, {"hopping", "hop"},
      {"filing", "file"},      {"happy", "happi"},    {"relational", "relat"},
      {"generously", "gener"}, {"dying", "die"},      {"sky", "sky"},
      {"controll", "control"}, {"roll", "roll"},      {"triplicate", "triplic"},
      {"adoption", "adopt"}};
  for (const auto& [word, stem] : cases) EXPECT_EQ(PorterStem(word), stem) << word;
}

TEST(BleuTest, HandComputedCorpus) {
  // Identical hypothesis and reference of 4 tokens: every precision 100%, BP 1, BLEU 100.
  const BleuScore same = CorpusBleu({"a b c d"}, {{"a b c d"}});
  EXPECT_NEAR(same.score, 100.0, 1e-12);
  EXPECT_EQ(same.bp, 1.0);
  // No match at all: 0, no division by zero.
  const BleuScore none = CorpusBleu({"a b c d"}, {{"w x y z"}});
  EXPECT_EQ(none.score, 0.0);
  // Empty hypothesis: BP = 0 and score 0.
  const BleuScore empty = CorpusBleu({""}, {{"a b"}});
  EXPECT_EQ(empty.score, 0.0);
  EXPECT_EQ(empty.bp, 0.0);
  // 'exp' smoothing: "a b c x" vs "a b c d": p1 = 3/4, p2 = 2/3, p3 = 1/2, p4 = 0 -> 100 / (2 * 1).
  const BleuScore smoothed = CorpusBleu({"a b c x"}, {{"a b c d"}});
  const double want =
      std::exp((std::log(75.0) + std::log(200.0 / 3) + std::log(50.0) + std::log(50.0)) / 4);
  EXPECT_NEAR(smoothed.score, want, 1e-9);
}

TEST(BleuTest, EmptyCorpusScoresZero) {
  const BleuScore s = CorpusBleu({}, {{}});
  EXPECT_EQ(s.score, 0.0);
  EXPECT_EQ(s.sys_len, 0);
}

// ---- cost -------------------------------------------------------------------------------------

}  // namespace
}  // namespace pmpd::metrics
