#include "models/llama_config.h"

#include <gtest/gtest.h>

#include "models/file_util.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

constexpr char kMinimal[] = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
  "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8, "vocab_size": 512})";

TEST(LlamaConfigTest, ParsesStories260K) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  auto c = LoadLlamaConfig(pmpd::testing::SharedPath("models/stories260K"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->hidden_size, 64);
  EXPECT_EQ(c->intermediate_size, 172);
  EXPECT_EQ(c->num_hidden_layers, 5);
  EXPECT_EQ(c->num_attention_heads, 8);
  EXPECT_EQ(c->num_key_value_heads, 4);
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->vocab_size, 512);
  EXPECT_EQ(c->max_position_embeddings, 512);
  EXPECT_TRUE(c->tie_word_embeddings);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-5);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>({2}));
}

TEST(LlamaConfigTest, Defaults) {
  auto c = ParseLlamaConfig(kMinimal, "config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->num_key_value_heads, 8);  // defaults to heads
  EXPECT_EQ(c->head_dim, 8);
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kNone);
  EXPECT_FALSE(c->tie_word_embeddings);
}

TEST(LlamaConfigTest, EosListHeadDimAndLlama3Rope) {
  auto c = ParseLlamaConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64,
    "intermediate_size": 172, "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
    "head_dim": 32, "vocab_size": 10, "eos_token_id": [2, 7], "rope_theta": 500000.0,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}})",
                            "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->head_dim, 32);
  EXPECT_EQ(c->q_dim(), 128);
  EXPECT_EQ(c->kv_dim(), 64);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>({2, 7}));
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 8.0);
  EXPECT_EQ(c->rope_scaling.original_max_position_embeddings, 8192);
  EXPECT_DOUBLE_EQ(c->rope_theta, 500000.0);
}

TEST(LlamaConfigTest, TransformersV5RopeParametersAndLinear) {
  auto c = ParseLlamaConfig(R"({"model_type": "llama", "hidden_size": 64, "intermediate_size": 8,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10,
    "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0}})",
                            "cfg");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_DOUBLE_EQ(c->rope_scaling.factor, 2.0);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1000.0);
}

TEST(LlamaConfigTest, RoundTripsThroughJson) {
  auto c = ParseLlamaConfig(kMinimal, "a");
  ASSERT_TRUE(c.ok());
  c->rope_scaling.type = RopeScalingType::kLlama3;
  c->rope_scaling.factor = 4;
  c->eos_token_ids = {2, 3};
  auto d = ParseLlamaConfig(LlamaConfigToJson(*c), "b");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->rope_scaling.type, RopeScalingType::kLlama3);
  EXPECT_EQ(d->eos_token_ids, c->eos_token_ids);
  EXPECT_EQ(d->head_dim, c->head_dim);
}

struct BadCase {
  const char* json;
  const char* expected_substring;
};

TEST(LlamaConfigTest, BadInputGivesClearErrors) {
  const BadCase cases[] = {
      {"{not json", "not valid JSON"},
      {"[1, 2]", "must be a JSON object"},
      {R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 64})",
       "unsupported architecture \"GPT2LMHeadModel\""},
      {R"({"model_type": "falcon"})", "unsupported architecture \"falcon\""},
      {R"({"architectures": ["LlamaForCausalLM"], "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 1, "vocab_size": 1})",
       "\"hidden_size\" is missing"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": "64", "intermediate_size": 1,
           "num_hidden_layers": 1, "num_attention_heads": 1, "vocab_size": 1})",
       "\"hidden_size\" must be an integer"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "num_key_value_heads": 3, "vocab_size": 1})",
       "must divide num_attention_heads"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "rope_scaling": {"type": "yarn", "factor": 4}})",
       "rope type \"yarn\""},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "rope_scaling": {"rope_type": "llama3", "factor": 8}})",
       "needs \"low_freq_factor\""},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "hidden_act": "gelu"})",
       "only \"silu\""},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "eos_token_id": "x"})",
       "eos_token_id"},
      // Issue 17: ids that narrowed to some int were accepted.
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "eos_token_id": -5})",
       "eos_token_id\" is out of range: -5"},
      {R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1, "num_hidden_layers": 1,
           "num_attention_heads": 8, "vocab_size": 1, "eos_token_id": [2, 18446744073709551615]})",
       "eos_token_id\" is out of range: 18446744073709551615"},
  };
  for (const auto& bc : cases) {
    auto c = ParseLlamaConfig(bc.json, "/models/x/config.json");
    ASSERT_FALSE(c.ok()) << bc.json;
    EXPECT_NE(c.status().message().find("/models/x/config.json"), std::string::npos) << c.status();
    EXPECT_NE(c.status().message().find(bc.expected_substring), std::string::npos) << c.status();
  }
}

// Issue 17: a config followed by a NUL byte and garbage was accepted (the parser stopped at the
// NUL); the whole file must be JSON.
TEST(LlamaConfigTest, TrailingNulAndGarbageAreRefused) {
  const std::string good =
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 1,
          "num_hidden_layers": 1, "num_attention_heads": 8, "vocab_size": 1})";
  ASSERT_TRUE(ParseLlamaConfig(good, "c.json").ok());
  for (const std::string& tail :
       {std::string("\0garbage", 8), std::string(" x"), std::string(1, '\0')}) {
    auto c = ParseLlamaConfig(good + tail, "c.json");
    ASSERT_FALSE(c.ok()) << "accepted a config followed by " << tail.size() << " bytes";
    EXPECT_EQ(c.status().message().rfind("c.json: ", 0), 0u) << c.status();
  }
}

TEST(LlamaConfigTest, MissingConfigFileNamesThePath) {
  const std::string dir = pmpd::testing::MakeTempDir("noconfig");
  auto c = LoadLlamaConfig(dir);
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find(dir + "/config.json"), std::string::npos) << c.status();
  EXPECT_NE(c.status().message().find("missing"), std::string::npos) << c.status();
}

}  // namespace
}  // namespace pmpd::models
