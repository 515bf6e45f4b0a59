// The CPU engine on any-precision checkpoints: at every precision it computes what a dense model
// holding the dequantized weights computes, on both the GEMV (<= 8 rows) and dequantize paths.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "inference/llama_model.h"
#include "inference/perplexity.h"
#include "models/file_util.h"
#include "models/random_llama.h"
#include "models/safetensors.h"
#include "models/torch_checkpoint.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::SharedPath;
using pmpd::testing::WriteFile;

// A plain checkpoint whose projections are the fixture's expected dequantized weights at `bits`.
std::string DenseFixtureAt(int bits) {
  const std::string fixture = SharedPath("fixtures/anyprec-tiny");
  const std::string dir = MakeTempDir(absl::StrCat("dense", bits));
  auto tensors = models::ReadTorchStateDict(fixture + "/pytorch_model.bin");
  EXPECT_TRUE(tensors.ok()) << tensors.status();
  std::vector<models::TensorToWrite> out;
  for (auto& t : *tensors) {
    if (t.name.find(".qweight") == std::string::npos && t.name.find(".lut") == std::string::npos) {
      out.push_back(std::move(t));
    }
  }
  auto expected = models::SafetensorsFile::Open(fixture + "/expected.safetensors");
  EXPECT_TRUE(expected.ok());
  for (const auto& [name, v] : (*expected)->tensors()) {
    const std::string suffix = absl::StrCat(".w", bits);
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = name.substr(0, name.size() - suffix.size());
      out.push_back({base + ".weight", models::DType::kF32, v.shape,
                     std::string(reinterpret_cast<const char*>(v.data), v.nbytes)});
    }
  }
  EXPECT_TRUE(models::WriteSafetensors(dir + "/model.safetensors", out).ok());
  auto config = nlohmann::json::parse(ReadFile(fixture + "/config.json"));
  config.erase("anyprec");
  WriteFile(dir + "/config.json", config.dump());
  return dir;
}

double MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

TEST(AnyprecModelTest, PackerCheckpointMatchesDequantizedDenseModelAtEveryPrecision) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  auto ap = LlamaModel::Load(SharedPath("fixtures/anyprec-tiny"));
  ASSERT_TRUE(ap.ok()) << ap.status();
  EXPECT_EQ((*ap)->min_precision(), 2);
  EXPECT_EQ((*ap)->max_precision(), 4);
  EXPECT_EQ((*ap)->precision(), 4);
  std::vector<int> ids(12);
  for (int i = 0; i < 12; ++i) ids[i] = (i * 41 + 7) % 512;
  for (int bits = 2; bits <= 4; ++bits) {
    auto dense = LlamaModel::Load(DenseFixtureAt(bits));
    ASSERT_TRUE(dense.ok()) << dense.status();
    ASSERT_TRUE((*ap)->SetPrecision(bits).ok());
    std::vector<float> want, got, step;
    (*dense)->Reset();
    ASSERT_TRUE((*dense)->Forward(ids, true, &want).ok());
    (*ap)->Reset();
    ASSERT_TRUE((*ap)->Forward(ids, true, &got).ok());  // 12 rows: dequantize path
    // Same weights, different summation order only: float32 rounding, logits of magnitude ~1.
    EXPECT_LT(MaxAbsDiff(got, want), 1e-4) << bits << " bits, prefill";
    (*ap)->Reset();
    std::vector<float> incremental;
    for (int id : ids) {  // 1 row at a time: the GEMV path straight from the planes
      const int one[1] = {id};
      ASSERT_TRUE((*ap)->Forward(one, false, &step).ok());
      incremental.insert(incremental.end(), step.begin(), step.end());
    }
    EXPECT_LT(MaxAbsDiff(incremental, want), 1e-4) << bits << " bits, decode";
  }
  // Different precisions really differ.
  std::vector<float> l2, l4;
  (*ap)->Reset();
  ASSERT_TRUE((*ap)->SetPrecision(2).ok());
  ASSERT_TRUE((*ap)->Forward(ids, false, &l2).ok());
  (*ap)->Reset();
  ASSERT_TRUE((*ap)->SetPrecision(4).ok());
  ASSERT_TRUE((*ap)->Forward(ids, false, &l4).ok());
  EXPECT_GT(MaxAbsDiff(l2, l4), 1e-3);
}

TEST(AnyprecModelTest, PrecisionOutsideTheCheckpointIsRefused) {
  PMPD_REQUIRE_SHARED("fixtures/anyprec-tiny/pytorch_model.bin");
  auto ap = LlamaModel::Load(SharedPath("fixtures/anyprec-tiny"));
  ASSERT_TRUE(ap.ok());
  for (int bits : {1, 5, 8}) {
    auto st = (*ap)->SetPrecision(bits);
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("holds 2 to 4 bits"), std::string::npos) << st;
  }
  const std::string dir = MakeTempDir("plain");
  ASSERT_TRUE(models::WriteRandomLlama(dir, models::TinyDemoConfig(64), 1).ok());
  auto plain = LlamaModel::Load(dir);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ((*plain)->precision(), 0);
  auto st = (*plain)->SetPrecision(4);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("not an any-precision checkpoint"), std::string::npos);
}

TEST(PerplexityTest, EqualsLogSoftmaxOfForwardLogits) {
  const std::string dir = MakeTempDir("ppl");
  int vocab = 0;
  ASSERT_TRUE(models::WriteTinyTokenizer(dir, &vocab).ok());
  ASSERT_TRUE(models::WriteRandomLlama(dir, models::TinyDemoConfig(vocab), 2).ok());
  auto model = LlamaModel::Load(dir);
  auto tok = models::Tokenizer::Load(dir);
  ASSERT_TRUE(model.ok() && tok.ok());
  const std::vector<std::string> docs = {"The cat sat on the mat.",
                                         "Once upon a time there was a bird."};
  const std::vector<int> stream = TokenStream(**tok, docs);
  const int seq_len = 7;
  auto r = Perplexity(**model, **tok, docs, seq_len);
  ASSERT_TRUE(r.ok()) << r.status();
  double nll = 0;
  int64_t count = 0;
  for (size_t s = 0; s < stream.size(); s += seq_len) {
    const size_t len = std::min<size_t>(seq_len, stream.size() - s);
    if (len < 2) break;
    std::vector<float> logits;
    (*model)->Reset();
    ASSERT_TRUE((*model)->Forward(absl::MakeConstSpan(stream).subspan(s, len), true, &logits).ok());
    for (size_t i = 0; i + 1 < len; ++i) {
      const float* row = logits.data() + i * vocab;
      double mx = -INFINITY, z = 0;
      for (int v = 0; v < vocab; ++v) mx = std::max(mx, double(row[v]));
      for (int v = 0; v < vocab; ++v) z += std::exp(row[v] - mx);
      nll -= row[stream[s + i + 1]] - mx - std::log(z);
      ++count;
    }
  }
  EXPECT_EQ(r->tokens, count);
  EXPECT_NEAR(r->nll, nll, 1e-4 * nll);
  EXPECT_NEAR(r->perplexity(), std::exp(nll / count), 1e-4 * r->perplexity());
}

}  // namespace
}  // namespace pmpd::inference
