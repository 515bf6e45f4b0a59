#include "inference/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace pmpd::inference {
namespace {

std::vector<float> LogProbs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double v : p) l.push_back(static_cast<float>(std::log(v)));
  return l;
}

// Samples n times and checks each frequency is within 5 standard deviations of `expected`.
void ExpectFrequencies(Sampler& s, const std::vector<float>& logits,
                       const std::vector<double>& expected, int n) {
  std::vector<int> counts(logits.size());
  for (int i = 0; i < n; ++i) ++counts[s.Sample(logits)];
  for (size_t k = 0; k < expected.size(); ++k) {
    const double sigma = std::sqrt(n * expected[k] * (1 - expected[k])) + 1e-9;
    EXPECT_NEAR(counts[k], n * expected[k], 5 * sigma + (expected[k] == 0 ? 0 : 1))
        << "token " << k;
  }
}

TEST(SamplerTest, ArgmaxPrefersLowestIndexOnTies) {
  EXPECT_EQ(Argmax(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{-5}), 0);
}

TEST(SamplerTest, GreedyAndTopK1AreArgmax) {
  const std::vector<float> logits = {0.1f, 2.f, -1.f, 1.9f};
  Sampler greedy({0.f, 0, 1.f, 3});
  Sampler topk1({1.f, 1, 1.f, 3});
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(greedy.Sample(logits), 1);
    EXPECT_EQ(topk1.Sample(logits), 1);
  }
}

// Issue 17: --temperature 1e-38 divided the logits into infinities (inf - inf = NaN) and sampled
// the last token forever; a tiny temperature is the argmax (ties split between the tied tokens).
TEST(SamplerTest, TinyTemperatureIsTheArgmax) {
  const std::vector<float> logits = {0.1f, 2.f, -1.f, 1.9f, -30.f};
  for (float t : {1e-38f, 1e-30f, 1e-6f}) {
    Sampler s({t, 0, 1.f, 7});
    Sampler p({t, 0, 0.5f, 7});
    for (int i = 0; i < 50; ++i) {
      EXPECT_EQ(s.Sample(logits), 1) << t;
      EXPECT_EQ(p.Sample(logits), 1) << t;
    }
  }
  Sampler tie({1e-38f, 0, 1.f, 8});
  int ones = 0;
  for (int i = 0; i < 400; ++i) {
    const int k = tie.Sample(std::vector<float>{3.f, 3.f, -1.f});
    ASSERT_TRUE(k == 0 || k == 1) << k;
    ones += k;
  }
  EXPECT_GT(ones, 100);
  EXPECT_LT(ones, 300);
}

TEST(SamplerTest, TemperatureOneFollowsTheSoftmax) {
  Sampler s({1.f, 0, 1.f, 42});
  ExpectFrequencies(s, LogProbs({0.5, 0.3, 0.2}), {0.5, 0.3, 0.2}, 20000);
}

TEST(SamplerTest, TemperatureTwoFlattens) {
  Sampler s({2.f, 0, 1.f, 43});
  const double a = std::sqrt(0.5), b = std::sqrt(0.3), c = std::sqrt(0.2), z = a + b + c;
  ExpectFrequencies(s, LogProbs({0.5, 0.3, 0.2}), {a / z, b / z, c / z}, 20000);
}

TEST(SamplerTest, TopKAndTopPRestrictTheSupport) {
  Sampler k2({1.f, 2, 1.f, 44});
  ExpectFrequencies(k2, LogProbs({0.5, 0.3, 0.2}), {0.625, 0.375, 0.0}, 20000);
  // Cumulative 0.5 < 0.6, then 0.8 >= 0.6: keeps the first two.
  Sampler p06({1.f, 0, 0.6f, 45});
  ExpectFrequencies(p06, LogProbs({0.5, 0.3, 0.2}), {0.625, 0.375, 0.0}, 20000);
  // p below the top token's probability keeps just that token.
  Sampler p01({1.f, 0, 0.1f, 46});
  ExpectFrequencies(p01, LogProbs({0.2, 0.5, 0.3}), {0.0, 1.0, 0.0}, 1000);
}

TEST(SamplerTest, SeededAndReproducible) {
  std::vector<float> logits(100);
  for (int i = 0; i < 100; ++i) logits[i] = std::sin(i * 0.7f);
  auto draw = [&](uint64_t seed) {
    Sampler s({0.9f, 50, 0.95f, seed});
    std::vector<int> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.Sample(logits));
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(SamplerTest, ValidatesOptions) {
  EXPECT_FALSE(ValidateSamplingOptions({-1.f, 0, 1.f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({1.f, -3, 1.f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({1.f, 0, 0.f, 0}).ok());
  EXPECT_FALSE(ValidateSamplingOptions({1.f, 0, 1.5f, 0}).ok());
  auto st = ValidateSamplingOptions({1.f, 0, 1.5f, 0});
  EXPECT_NE(st.message().find("--top-p"), std::string::npos);
  EXPECT_TRUE(ValidateSamplingOptions({0.7f, 40, 0.9f, 0}).ok());
}

}  // namespace
}  // namespace pmpd::inference
