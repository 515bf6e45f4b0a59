#include "inference/llama_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "inference/generator.h"
#include "models/random_llama.h"
#include "models/safetensors.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

using nlohmann::json;
using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::SharedPath;
using pmpd::testing::SourcePath;
// Float32 logits of two implementations: tolerance derived in tests/test_util.h (8 eps sqrt(K) x
// depth x |logit|).
using pmpd::testing::LogitTolerance;

struct Diff {
  double max_abs = 0;
  size_t index = 0;
};
Diff MaxDiff(const std::vector<float>& got, const std::vector<double>& want) {
  Diff d;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = std::fabs(got[i] - want[i]);
    if (!(e <= d.max_abs)) {  // NaN counts as worst
      d.max_abs = std::isnan(e) ? INFINITY : e;
      d.index = i;
    }
  }
  return d;
}

TEST(LlamaModelTest, Stories260KMatchesTransformersGreedyAndLogits) {
  PMPD_REQUIRE_SHARED("models/stories260K/reference_greedy.json");
  auto model = LlamaModel::Load(SharedPath("models/stories260K"));
  ASSERT_TRUE(model.ok()) << model.status();
  const json ref = json::parse(ReadFile(SharedPath("models/stories260K/reference_greedy.json")));
  ASSERT_EQ(ref.at("cases").size(), 2u);
  const auto& c = (*model)->config();
  for (const auto& cs : ref.at("cases")) {
    const auto ids = cs.at("input_ids").get<std::vector<int>>();
    const auto want = cs.at("last_logits").get<std::vector<double>>();
    (*model)->Reset();
    std::vector<float> logits;
    ASSERT_TRUE((*model)->Forward(ids, false, &logits).ok());
    ASSERT_EQ(logits.size(), want.size());
    double max_abs = 0;
    for (double v : want) max_abs = std::max(max_abs, std::fabs(v));
    const double tol = LogitTolerance(std::max(c.hidden_size, c.intermediate_size),
                                      c.num_hidden_layers + 1, max_abs, /*5 decimals*/ 5e-6);
    const Diff d = MaxDiff(logits, want);
    EXPECT_LE(d.max_abs, tol) << "worst logit " << d.index << ": got " << logits[d.index]
                              << " want " << want[d.index];
    RecordProperty("max_abs_logit_error", std::to_string(d.max_abs));
    std::printf("[ stories260K ] '%s': max |logit error| %.3g (tolerance %.3g)\n",
                cs.at("prompt").get<std::string>().c_str(), d.max_abs, tol);

    GenerationOptions opt;
    opt.max_new_tokens = 48;
    opt.stop_at_eos = false;
    auto gen = Generate(**model, ids, opt);
    ASSERT_TRUE(gen.ok()) << gen.status();
    EXPECT_EQ(gen->new_ids, cs.at("greedy_new_ids").get<std::vector<int>>()) << cs.at("prompt");
  }
}

// A random Llama with untied embeddings, GQA (8 heads, 2 KV heads), head_dim != hidden/heads and
// llama3 rope scaling, rebuilt from its seed; logits from transformers in tests/golden.
TEST(LlamaModelTest, RandomLlama3GqaMatchesTransformers) {
  const json g = json::parse(ReadFile(SourcePath("tests/golden/random_llama3_gqa.json")));
  auto config = models::ParseLlamaConfig(g.at("config").dump(), "golden config");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_FALSE(config->tie_word_embeddings);
  ASSERT_EQ(config->rope_scaling.type, models::RopeScalingType::kLlama3);
  const std::string dir = MakeTempDir("random_llama3");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, g.at("seed").get<uint64_t>()).ok());
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();

  const auto ids = g.at("prompt_ids").get<std::vector<int>>();
  std::vector<float> logits;
  ASSERT_TRUE((*model)->Forward(ids, /*all_positions=*/true, &logits).ok());
  std::vector<double> want;
  double max_abs = 0;
  for (const auto& row : g.at("logits")) {
    for (double v : row) {
      want.push_back(v);
      max_abs = std::max(max_abs, std::fabs(v));
    }
  }
  ASSERT_EQ(logits.size(), want.size());
  const auto& c = *config;
  const double tol = LogitTolerance(std::max({c.hidden_size, c.intermediate_size, c.q_dim()}),
                                    c.num_hidden_layers + 1, max_abs, /*6 decimals*/ 5e-7);
  const Diff d = MaxDiff(logits, want);
  EXPECT_LE(d.max_abs, tol) << "worst logit: position " << d.index / c.vocab_size << " token "
                            << d.index % c.vocab_size << ": got " << logits[d.index] << " want "
                            << want[d.index];
  std::printf("[ random llama3 GQA ] max |logit error| over %zu logits: %.3g (tolerance %.3g)\n",
              want.size(), d.max_abs, tol);

  GenerationOptions opt;
  opt.max_new_tokens = static_cast<int>(g.at("greedy_new_ids").size());
  opt.stop_at_eos = false;
  auto gen = Generate(**model, ids, opt);
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(gen->new_ids, g.at("greedy_new_ids").get<std::vector<int>>());
}

// Prefill then single-token steps give the logits of one full-sequence forward at every position.
TEST(LlamaModelTest, IncrementalDecodingEqualsFullForward) {
  const json g = json::parse(ReadFile(SourcePath("tests/golden/random_llama3_gqa.json")));
  auto config = models::ParseLlamaConfig(g.at("config").dump(), "golden config");
  ASSERT_TRUE(config.ok());
  const std::string dir = MakeTempDir("incremental");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, 99).ok());
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok());
  const int n = 100, V = config->vocab_size;
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 37 + 11) % V;
  std::vector<float> full;
  ASSERT_TRUE((*model)->Forward(ids, true, &full).ok());
  ASSERT_EQ(full.size(), static_cast<size_t>(n) * V);
  double max_abs = 0;
  for (float v : full) max_abs = std::max(max_abs, std::fabs(double(v)));
  const auto& c = *config;
  const double tol = LogitTolerance(std::max({c.hidden_size, c.intermediate_size, c.q_dim(), n}),
                                    c.num_hidden_layers + 1, max_abs, 0);
  for (int prefill : {1, 37}) {
    (*model)->Reset();
    std::vector<float> step, incremental;
    ASSERT_TRUE((*model)->Forward(absl::MakeConstSpan(ids).subspan(0, prefill), true, &step).ok());
    incremental = step;
    for (int i = prefill; i < n; ++i) {
      ASSERT_TRUE((*model)->Forward(absl::MakeConstSpan(ids).subspan(i, 1), false, &step).ok());
      incremental.insert(incremental.end(), step.begin(), step.end());
    }
    ASSERT_EQ((*model)->cache_len(), n);
    ASSERT_EQ(incremental.size(), full.size());
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < full.size(); ++i) {
      const double e = std::fabs(double(incremental[i]) - full[i]);
      if (!(e <= worst)) worst = e, at = i;
    }
    EXPECT_LE(worst, tol) << "prefill " << prefill << ": position " << at / V << " token "
                          << at % V;
    std::printf(
        "[ incremental, prefill %d ] max |logit diff| over %d positions: %.3g (tolerance %.3g)\n",
        prefill, n, worst, tol);
  }
}

// One layer, vocabulary 32, context 8.
absl::StatusOr<models::LlamaConfig> TinyConfig() {
  return models::ParseLlamaConfig(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
          "num_attention_heads": 2, "vocab_size": 32, "max_position_embeddings": 8})",
      "cfg");
}

TEST(LlamaModelTest, RejectsTokensPastContextAndOutOfVocab) {
  auto config = TinyConfig();
  ASSERT_TRUE(config.ok());
  const std::string dir = MakeTempDir("ctx");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, 1).ok());
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<float> logits;
  std::vector<int> nine(9, 3);
  auto st = (*model)->Forward(nine, false, &logits);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("exceeds the model's context of 8"), std::string::npos) << st;
  EXPECT_EQ((*model)->cache_len(), 0);
  std::vector<int> bad = {1, 32};
  st = (*model)->Forward(bad, false, &logits);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("token id 32 outside the vocabulary"), std::string::npos) << st;

  GenerationOptions opt;
  std::vector<int> eight(8, 3);
  auto gen = Generate(**model, eight, opt);
  ASSERT_FALSE(gen.ok());
  EXPECT_NE(gen.status().message().find("prompt has 8 tokens"), std::string::npos) << gen.status();
  // A prompt that fits stops at the context end instead of failing.
  std::vector<int> five(5, 3);
  opt.max_new_tokens = 100;
  opt.stop_at_eos = false;
  gen = Generate(**model, five, opt);
  ASSERT_TRUE(gen.ok()) << gen.status();
  EXPECT_EQ(gen->finish_reason, "context");
  EXPECT_EQ(gen->prompt_ids.size() + gen->new_ids.size(),
            9u);  // the 9th token is sampled, never fed back
}

// The Engine's default DecodeBatch (one slot, DecodeStep underneath): the same logits and argmax
// as DecodeStep, and its refusals (other slots, sizes, token ids, a full cache) change nothing.
TEST(LlamaModelTest, DefaultDecodeBatchIsDecodeStepOnOneSlot) {
  auto config = TinyConfig();
  ASSERT_TRUE(config.ok());
  const std::string dir = MakeTempDir("batch1");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, 3).ok());
  auto a = LlamaModel::Load(dir);
  auto b = LlamaModel::Load(dir);
  ASSERT_TRUE(a.ok() && b.ok());
  Engine& batched = **a;
  Engine& single = **b;
  EXPECT_EQ(batched.max_batch(), 1);
  EXPECT_EQ(batched.sequence(), 0);
  EXPECT_TRUE(batched.SelectSequence(0).ok());
  EXPECT_EQ(batched.SelectSequence(1).code(), absl::StatusCode::kOutOfRange);
  const std::vector<int> prompt = {1, 5, 9};
  ASSERT_TRUE(batched.Prefill(prompt, nullptr, nullptr).ok());
  ASSERT_TRUE(single.Prefill(prompt, nullptr, nullptr).ok());
  int tok = 7;
  for (int k = 0; k < 4; ++k) {
    std::vector<float> want, got;
    int want_arg = -1;
    std::vector<int> got_arg;
    ASSERT_TRUE(single.DecodeStep(tok, &want, &want_arg).ok());
    ASSERT_TRUE(batched.DecodeBatch({0}, {tok}, &got, &got_arg).ok());
    EXPECT_EQ(got, want);
    ASSERT_EQ(got_arg.size(), 1u);
    EXPECT_EQ(got_arg[0], want_arg);
    tok = want_arg;
  }
  EXPECT_EQ(batched.cache_len(), 7);
  std::vector<int> arg;
  EXPECT_EQ(batched.DecodeBatch({1}, {tok}, nullptr, &arg).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(batched.DecodeBatch({0}, {32}, nullptr, &arg).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batched.DecodeBatch({0}, {1, 2}, nullptr, &arg).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(batched.cache_len(), 7);
  ASSERT_TRUE(batched.DecodeBatch({0}, {tok}, nullptr, &arg).ok());
  auto full = batched.DecodeBatch({0}, {tok}, nullptr, &arg);
  EXPECT_EQ(full.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(full.message().find("slot 0 is full (8 of 8 positions)"), std::string::npos) << full;
  EXPECT_EQ(batched.cache_len(), 8);
}

// Sequence slots on the CPU engine (SetMaxBatch): each slot decodes what a model holding only
// that sequence decodes (DecodeBatch rows and selected-slot steps alike); CopySequence branches a
// prefix that then continues as the original did; refusals change nothing.
TEST(LlamaModelTest, SlotsDecodeTheirOwnSequencesAndCopyPrefixes) {
  auto config = TinyConfig();
  ASSERT_TRUE(config.ok());
  config->max_position_embeddings = 64;
  const std::string dir = MakeTempDir("slots");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, 5).ok());
  auto a = LlamaModel::Load(dir);
  ASSERT_TRUE(a.ok());
  LlamaModel& m = **a;
  EXPECT_EQ(m.CopySequence(0, 1, 0).code(), absl::StatusCode::kOutOfRange);  // one slot
  EXPECT_EQ(m.SetMaxBatch(0).code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(m.SetMaxBatch(3).ok());
  EXPECT_EQ(m.max_batch(), 3);
  // What each sequence decodes alone: logits of 6 greedy steps after its prompt.
  const std::vector<std::vector<int>> prompts = {{1, 5, 9, 2, 7}, {3, 3, 8}};
  std::vector<std::vector<std::vector<float>>> alone(2);
  std::vector<std::vector<int>> fed(2);
  for (int q = 0; q < 2; ++q) {
    auto b = LlamaModel::Load(dir);
    ASSERT_TRUE(b.ok());
    int tok = -1;
    ASSERT_TRUE((*b)->Prefill(prompts[q], nullptr, &tok).ok());
    for (int k = 0; k < 6; ++k) {
      std::vector<float> logits;
      fed[q].push_back(tok);
      ASSERT_TRUE((*b)->DecodeStep(tok, &logits, &tok).ok());
      alone[q].push_back(logits);
    }
  }
  // Both in slots 0 and 1, stepped together (rows in either order).
  for (int q = 0; q < 2; ++q) {
    ASSERT_TRUE(m.SelectSequence(q).ok());
    ASSERT_TRUE(m.Prefill(prompts[q], nullptr, nullptr).ok());
  }
  const int vocab = config->vocab_size;
  for (int k = 0; k < 4; ++k) {
    std::vector<float> logits;
    ASSERT_TRUE(m.DecodeBatch({1, 0}, {fed[1][k], fed[0][k]}, &logits, nullptr).ok());
    EXPECT_EQ(std::vector<float>(logits.begin(), logits.begin() + vocab), alone[1][k]) << k;
    EXPECT_EQ(std::vector<float>(logits.begin() + vocab, logits.end()), alone[0][k]) << k;
  }
  EXPECT_EQ(m.sequence(), 1);  // the last Prefill's slot, unchanged by DecodeBatch
  EXPECT_EQ(m.cache_len(), 3 + 4);
  // Slot 0's first 5 + 2 positions into slot 2, which then decodes step 2 onwards as slot 0 did.
  ASSERT_TRUE(m.CopySequence(0, 2, 7).ok());
  EXPECT_EQ(m.sequence(), 1);
  ASSERT_TRUE(m.SelectSequence(2).ok());
  EXPECT_EQ(m.cache_len(), 7);
  for (int k = 2; k < 6; ++k) {
    std::vector<float> logits;
    ASSERT_TRUE(m.DecodeStep(fed[0][k], &logits, nullptr).ok());
    EXPECT_EQ(logits, alone[0][k]) << k;
  }
  // Slot 0 itself goes on from step 4 (its copy did not disturb it).
  ASSERT_TRUE(m.SelectSequence(0).ok());
  std::vector<float> logits;
  ASSERT_TRUE(m.DecodeStep(fed[0][4], &logits, nullptr).ok());
  EXPECT_EQ(logits, alone[0][4]);
  // From the selected slot (0, 10 positions) over slot 1's stale sequence, then into the selected
  // slot from a parked one: both continue as slot 0 did, argmax as DecodeStep's.
  ASSERT_TRUE(m.CopySequence(0, 1, 5 + 3).ok());
  ASSERT_TRUE(m.SelectSequence(2).ok());
  ASSERT_TRUE(m.CopySequence(1, 2, 5 + 3).ok());
  EXPECT_EQ(m.cache_len(), 8);
  {
    std::vector<float> rows;
    std::vector<int> arg;
    ASSERT_TRUE(m.DecodeBatch({2, 1}, {fed[0][3], fed[0][3]}, &rows, &arg).ok());
    EXPECT_EQ(std::vector<float>(rows.begin(), rows.begin() + vocab), alone[0][3]);
    EXPECT_EQ(std::vector<float>(rows.begin() + vocab, rows.end()), alone[0][3]);
    ASSERT_EQ(arg.size(), 2u);
    EXPECT_EQ(arg[0], fed[0][4]);
    EXPECT_EQ(arg[1], fed[0][4]);
  }
  EXPECT_EQ(m.cache_len(), 9);
  ASSERT_TRUE(m.SelectSequence(0).ok());
  EXPECT_EQ(m.cache_len(), 10);
  // Refusals: nothing changes.
  EXPECT_EQ(m.CopySequence(1, 1, 2).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.CopySequence(1, 3, 2).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(m.CopySequence(-1, 2, 2).code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(m.CopySequence(1, 2, 10).code(), absl::StatusCode::kOutOfRange);  // slot 1 holds 9
  ASSERT_TRUE(m.SelectSequence(2).ok());
  EXPECT_EQ(m.cache_len(), 9);
  // Shrinking keeps the selected slot when it still exists, else selects slot 0.
  ASSERT_TRUE(m.SetMaxBatch(2).ok());
  EXPECT_EQ(m.sequence(), 0);
  EXPECT_EQ(m.cache_len(), 10);
}

TEST(LlamaModelTest, BadCheckpointsGiveClearErrors) {
  auto config = models::ParseLlamaConfig(
      R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 24, "num_hidden_layers": 1,
          "num_attention_heads": 2, "vocab_size": 32})",
      "cfg");
  ASSERT_TRUE(config.ok());
  const std::string dir = MakeTempDir("badck");
  ASSERT_TRUE(models::WriteRandomLlama(dir, *config, 1).ok());
  // Claim a larger FFN in config.json: the weights no longer fit it.
  models::LlamaConfig wrong = *config;
  wrong.intermediate_size = 48;
  pmpd::testing::WriteFile(dir + "/config.json", models::LlamaConfigToJson(wrong));
  auto m = LlamaModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("model.layers.0.mlp.gate_proj.weight\" has shape [24, 16]"),
            std::string::npos)
      << m.status();
  EXPECT_NE(m.status().message().find("config.json implies [48, 16]"), std::string::npos)
      << m.status();
  // Two layers in config.json, one in the weights: a missing tensor.
  wrong = *config;
  wrong.num_hidden_layers = 2;
  pmpd::testing::WriteFile(dir + "/config.json", models::LlamaConfigToJson(wrong));
  m = LlamaModel::Load(dir);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("missing tensor \"model.layers.1.input_layernorm.weight\""),
            std::string::npos)
      << m.status();
}

}  // namespace
}  // namespace pmpd::inference

namespace pmpd::inference {
namespace {

// The KV cache grows on demand (it starts at 256 positions): crossing that during prefill and
// during decode gives the same logits as one full forward.
TEST(LlamaModelTest, CacheGrowthKeepsResults) {
  models::LlamaConfig c = models::TinyDemoConfig(64);
  c.max_position_embeddings = 700;
  const std::string dir = MakeTempDir("growth");
  ASSERT_TRUE(models::WriteRandomLlama(dir, c, 8).ok());
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok());
  const int n = 600;
  std::vector<int> ids(n);
  for (int i = 0; i < n; ++i) ids[i] = (i * 29 + 3) % 64;
  std::vector<float> full, part, step;
  ASSERT_TRUE((*model)->Forward(ids, true, &full).ok());
  (*model)->Reset();
  ASSERT_TRUE((*model)->Forward(absl::MakeConstSpan(ids).subspan(0, 200), true, &part).ok());
  for (int i = 200; i < n; ++i) {
    ASSERT_TRUE((*model)->Forward(absl::MakeConstSpan(ids).subspan(i, 1), false, &step).ok());
    part.insert(part.end(), step.begin(), step.end());
  }
  ASSERT_EQ(part.size(), full.size());
  double worst = 0;
  for (size_t i = 0; i < full.size(); ++i)
    worst = std::max(worst, std::fabs(double(part[i]) - full[i]));
  EXPECT_LT(worst, 1e-4);
  std::vector<float> k, v;
  (*model)->CopyLastLayerKv(&k, &v);
  EXPECT_EQ(k.size(), static_cast<size_t>(c.kv_dim()) * n);
  // The in-place view (the cache has grown past n: its strides are not the copy's) reads the same
  // values element for element.
  const KvView view = (*model)->LastLayerKv();
  EXPECT_EQ(view.device, Device::kCpu);
  EXPECT_EQ(view.length, n);
  EXPECT_GE(view.head_stride, static_cast<int64_t>(n) * c.head_dim);
  int mismatches = 0;
  for (int h = 0; h < view.kv_heads; ++h) {
    for (int t = 0; t < n; ++t) {
      for (int d = 0; d < view.head_dim; ++d) {
        const size_t i = (static_cast<size_t>(h) * n + t) * c.head_dim + d;
        mismatches += view.k_at(h, t, d) != k[i] || view.v_at(h, t, d) != v[i];
      }
    }
  }
  EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace pmpd::inference
