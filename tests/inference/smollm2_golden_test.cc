// SmolLM2-135M-Instruct read from its GGUF file by our reader, tokenizer and chat template, run by
// the CPU engine, against Hugging Face transformers loading the same file (gguf_file=, float32):
// tests/golden/smollm2_golden.json, made by scripts/make_smollm2_golden.py.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "inference/generator.h"
#include "inference/llama_model.h"
#include "models/chat_template.h"
#include "models/tokenizer.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

using nlohmann::json;
using pmpd::testing::ReadFile;
using pmpd::testing::SmolLM2Path;
using pmpd::testing::SourcePath;
// Float32 logits of two implementations: tolerance derived in tests/test_util.h (8 eps sqrt(K) x
// depth x |logit|).
using pmpd::testing::LogitTolerance;

class SmolLM2GoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!pmpd::testing::FileExistsForTest(SmolLM2Path())) return;
    auto m = LlamaModel::Load(SmolLM2Path());
    ASSERT_TRUE(m.ok()) << m.status();
    model_ = m->release();
    auto t = models::Tokenizer::Load(SmolLM2Path());
    ASSERT_TRUE(t.ok()) << t.status();
    tok_ = t->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete tok_;
    model_ = nullptr;
    tok_ = nullptr;
  }
  void SetUp() override {
    PMPD_REQUIRE_SMOLLM2();
    ASSERT_NE(model_, nullptr);
    golden_ = json::parse(ReadFile(SourcePath("tests/golden/smollm2_golden.json")));
  }
  static LlamaModel* model_;
  static models::Tokenizer* tok_;
  json golden_;
};
LlamaModel* SmolLM2GoldenTest::model_ = nullptr;
models::Tokenizer* SmolLM2GoldenTest::tok_ = nullptr;

TEST_F(SmolLM2GoldenTest, ConfigFromGgufMetadata) {
  const auto& c = model_->config();
  EXPECT_EQ(c.num_hidden_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.num_attention_heads, 9);
  EXPECT_EQ(c.num_key_value_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.max_position_embeddings, 8192);
}

TEST_F(SmolLM2GoldenTest, LastPositionLogitsMatchTransformers) {
  const auto& c = model_->config();
  ASSERT_EQ(golden_.at("plain").size(), 3u);
  for (const auto& cs : golden_.at("plain")) {
    const auto want_ids = cs.at("ids").get<std::vector<int>>();
    const std::string prompt = cs.at("prompt").get<std::string>();
    EXPECT_EQ(tok_->Encode(prompt, /*add_bos=*/true), want_ids) << prompt;
    model_->Reset();
    std::vector<float> logits;
    ASSERT_TRUE(model_->Forward(want_ids, false, &logits).ok());
    ASSERT_EQ(static_cast<int>(logits.size()), c.vocab_size);
    const double tol =
        LogitTolerance(std::max(c.hidden_size, c.intermediate_size), c.num_hidden_layers + 1,
                       cs.at("max_abs_logit").get<double>());
    double worst = 0;
    int worst_id = -1;
    double want_at_worst = 0;
    for (const char* which : {"top", "sample"}) {
      const auto ids = cs.at(std::string(which) + "_ids").get<std::vector<int>>();
      const auto want = cs.at(std::string(which) + "_logits").get<std::vector<double>>();
      for (size_t i = 0; i < ids.size(); ++i) {
        const double e = std::fabs(logits[ids[i]] - want[i]);
        if (!(e <= worst)) {
          worst = std::isnan(e) ? INFINITY : e;
          worst_id = ids[i];
          want_at_worst = want[i];
        }
      }
    }
    EXPECT_LE(worst, tol) << prompt << ": worst id " << worst_id << " got " << logits[worst_id]
                          << " want " << want_at_worst;
    // Whole-row statistics catch an error outside the stored ids.
    double sum = 0, sq = 0;
    for (float v : logits) {
      sum += v;
      sq += static_cast<double>(v) * v;
    }
    EXPECT_NEAR(sum / logits.size(), cs.at("mean").get<double>(), tol) << prompt;
    EXPECT_NEAR(std::sqrt(sq), cs.at("l2").get<double>(),
                tol * std::sqrt(static_cast<double>(logits.size())))
        << prompt;
    const int argmax =
        static_cast<int>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    EXPECT_EQ(argmax, cs.at("top_ids")[0].get<int>()) << prompt;
    std::printf("[ SmolLM2 ] '%s': max |logit error| %.3g over 128 ids (tolerance %.3g)\n",
                prompt.substr(0, 40).c_str(), worst, tol);
  }
}

TEST_F(SmolLM2GoldenTest, ChatPromptsGreedy48TokensMatchTransformers) {
  ASSERT_FALSE(tok_->chat_template().empty());
  auto tmpl = models::ChatTemplate::Recognize(tok_->chat_template(), SmolLM2Path());
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  EXPECT_EQ(tmpl->format(), models::ChatFormat::kChatML);
  ASSERT_EQ(golden_.at("chat").size(), 3u);
  for (const auto& cs : golden_.at("chat")) {
    const std::string user = cs.at("user").get<std::string>();
    std::vector<models::ChatMessage> messages = {{"user", user}};
    auto rendered = tmpl->Render(messages, /*add_generation_prompt=*/true);
    ASSERT_TRUE(rendered.ok()) << rendered.status();
    EXPECT_EQ(*rendered, cs.at("rendered").get<std::string>());
    auto ids = tmpl->Encode(*tok_, messages, /*add_generation_prompt=*/true);
    ASSERT_TRUE(ids.ok()) << ids.status();
    ASSERT_EQ(*ids, cs.at("ids").get<std::vector<int>>()) << user;
    GenerationOptions opt;
    opt.max_new_tokens = 48;
    opt.stop_at_eos = false;  // transformers generated all 48 (eos_token_id=None)
    auto gen = Generate(*model_, *ids, opt);
    ASSERT_TRUE(gen.ok()) << gen.status();
    EXPECT_EQ(gen->new_ids, cs.at("new_ids").get<std::vector<int>>()) << user;
    EXPECT_EQ(tok_->Decode(gen->new_ids), cs.at("new_text").get<std::string>()) << user;
  }
}

}  // namespace
}  // namespace pmpd::inference
