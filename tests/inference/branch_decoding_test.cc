// Batched branches give, per branch, the logits of decoding that branch alone from its prefix.
#include <gtest/gtest.h>

#include <cmath>

#include "inference/llama_model.h"
#include "inference/sampler.h"
#include "models/random_llama.h"
#include "tests/test_util.h"

namespace pmpd::inference {
namespace {

TEST(BranchDecodingTest, BatchedBranchesEqualSequentialDecoding) {
  auto model = LlamaModel::Load(pmpd::testing::QuantizedRandomModel("branch", 80, 31, 2, 4));
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<int> seq(20);
  for (int i = 0; i < 20; ++i) seq[i] = (i * 13 + 5) % 80;
  const std::vector<int> prefixes = {5, 12, 20, 12};
  const int steps = 6;
  ASSERT_TRUE((*model)->SetPrecision(4).ok());
  std::vector<float> logits;
  ASSERT_TRUE((*model)->Forward(seq, false, &logits).ok());  // main sequence at 4 bits
  ASSERT_TRUE((*model)->SetPrecision(2).ok());               // branches continue at 2 bits
  ASSERT_TRUE((*model)->StartBranches(prefixes).ok());
  const int B = static_cast<int>(prefixes.size()), V = 80;
  // Branch b is fed seq[prefix_b] if any, then its own greedy tokens.
  std::vector<int> next(B);
  for (int b = 0; b < B; ++b) next[b] = prefixes[b] < 20 ? seq[prefixes[b]] : 7;
  std::vector<std::vector<float>> batched(B);
  std::vector<std::vector<int>> fed(B);
  for (int t = 0; t < steps; ++t) {
    ASSERT_TRUE((*model)->ForwardBranches(next, &logits).ok());
    for (int b = 0; b < B; ++b) {
      fed[b].push_back(next[b]);
      batched[b].insert(batched[b].end(), logits.begin() + b * V, logits.begin() + (b + 1) * V);
      next[b] = Argmax(absl::MakeConstSpan(logits).subspan(b * V, V));
    }
  }
  for (int b = 0; b < B; ++b) EXPECT_EQ((*model)->branch_len(b), prefixes[b] + steps);
  // Sequentially: the prefix at 4 bits, then the same tokens at 2 bits.
  for (int b = 0; b < B; ++b) {
    (*model)->Reset();
    ASSERT_TRUE((*model)->SetPrecision(4).ok());
    ASSERT_TRUE(
        (*model)->Forward(absl::MakeConstSpan(seq).subspan(0, prefixes[b]), false, &logits).ok());
    ASSERT_TRUE((*model)->SetPrecision(2).ok());
    std::vector<float> sequential;
    for (int t = 0; t < steps; ++t) {
      const int one[1] = {fed[b][t]};
      ASSERT_TRUE((*model)->Forward(one, false, &logits).ok());
      sequential.insert(sequential.end(), logits.begin(), logits.end());
    }
    double worst = 0;
    for (size_t i = 0; i < sequential.size(); ++i)
      worst = std::max(worst, std::fabs(double(sequential[i]) - batched[b][i]));
    // Same weights and inputs; only the batching changes summation order: float32 rounding.
    EXPECT_LT(worst, 1e-4) << "branch " << b;
  }
}

TEST(BranchDecodingTest, BadBranchRequests) {
  const std::string dir = pmpd::testing::MakeTempDir("branch_plain");
  ASSERT_TRUE(models::WriteRandomLlama(dir, models::TinyDemoConfig(40), 2).ok());
  auto model = LlamaModel::Load(dir);
  ASSERT_TRUE(model.ok());
  std::vector<float> logits;
  const std::vector<int> seq = {1, 2, 3};
  ASSERT_TRUE((*model)->Forward(seq, false, &logits).ok());
  EXPECT_FALSE((*model)->StartBranches(std::vector<int>{4}).ok());  // longer than the cache
  EXPECT_FALSE((*model)->StartBranches(std::vector<int>{}).ok());
  ASSERT_TRUE((*model)->StartBranches(std::vector<int>{2, 3}).ok());
  EXPECT_FALSE(
      (*model)->ForwardBranches(std::vector<int>{1}, &logits).ok());  // one token for two branches
  EXPECT_FALSE((*model)->ForwardBranches(std::vector<int>{1, 99}, &logits).ok());
  EXPECT_EQ((*model)->cache_len(), 3);  // the main sequence is untouched
}

}  // namespace
}  // namespace pmpd::inference
