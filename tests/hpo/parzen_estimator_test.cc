// The Parzen estimator of TPE on cases small enough to compute by hand; the arithmetic is in the
// comments. Phi is the standard normal CDF, phi its density.
#include "hpo/parzen_estimator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "hpo/param_transform.h"
#include "hpo/tpe_sampler.h"
#include "hpo/truncated_normal.h"

namespace pmpd::hpo {
namespace {

SearchSpace Space(std::vector<ParamSpec> params) {
  absl::StatusOr<SearchSpace> space = SearchSpace::FromParams(std::move(params));
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

std::vector<std::vector<double>> Column(std::initializer_list<double> values) {
  std::vector<std::vector<double>> rows;
  for (double v : values) rows.push_back({v});
  return rows;
}

// Values computed by hand are printed with 15-17 digits; the code computes the same expressions in
// another order, so they agree to a few ulps.
constexpr double kTight = 1e-13;

TEST(ParzenEstimatorTest, BandwidthIsTheLargerGapWithTheBoundsAsNeighbours) {
  // float [0, 10], observations in trial order 2, 9, 3. n = 3, n_kernels = 4 (with the prior),
  // range 10, min sigma = 10 / min(100, 1 + 4) = 2, max sigma = 10.
  // Sorted with the bounds: 0 | 2 3 9 | 10.
  //   2: gaps 2 - 0 = 2 and 3 - 2 = 1 -> 2
  //   3: gaps 1 and 9 - 3 = 6          -> 6
  //   9: gaps 6 and 10 - 9 = 1         -> 6
  // Prior: mu = 5, sigma = 10. Weights 1, 1, 1 and prior 1, normalised: 1/4 each.
  const SearchSpace space = Space({ParamSpec::Float("x", 0.0, 10.0)});
  const ParzenEstimator pe(space, {0}, Column({2.0, 9.0, 3.0}), {1.0, 1.0, 1.0}, 1.0);
  ASSERT_EQ(pe.n_kernels(), 4u);
  EXPECT_EQ(pe.mus(0), (std::vector<double>{2.0, 9.0, 3.0, 5.0}));
  EXPECT_EQ(pe.sigmas(0), (std::vector<double>{2.0, 6.0, 6.0, 10.0}));
  EXPECT_EQ(pe.weights(), (std::vector<double>{0.25, 0.25, 0.25, 0.25}));
}

TEST(ParzenEstimatorTest, BandwidthIsClippedAtBothEnds) {
  // float [0, 10], observations 4, 5, 6, 7: n_kernels = 5, min sigma = 10 / min(100, 6) = 1.6667.
  // Gaps: 4 -> max(4, 1) = 4; 5 -> max(1, 1) = 1 -> clipped up to 10/6; 6 -> likewise;
  // 7 -> max(1, 3) = 3.
  const SearchSpace space = Space({ParamSpec::Float("x", 0.0, 10.0)});
  const ParzenEstimator pe(space, {0}, Column({4.0, 5.0, 6.0, 7.0}), {1, 1, 1, 1}, 1.0);
  EXPECT_EQ(pe.sigmas(0)[0], 4.0);
  EXPECT_NEAR(pe.sigmas(0)[1], 10.0 / 6.0, kTight);
  EXPECT_NEAR(pe.sigmas(0)[2], 10.0 / 6.0, kTight);
  EXPECT_EQ(pe.sigmas(0)[3], 3.0);

  // One observation at the lower bound: gaps 0 and 10 -> 10 = range, the upper clip exactly.
  const ParzenEstimator edge(space, {0}, Column({0.0}), {1.0}, 1.0);
  EXPECT_EQ(edge.sigmas(0)[0], 10.0);

  // 199 observations at 5: n_kernels = 200, 1 + 200 > 100, so min sigma = 10 / 100 = 0.1. The first
  // of the tied run has the bound as left neighbour (gap 5), the last the bound on its right (gap
  // 5); the ones in between have gaps 0 -> clipped to 0.1.
  std::vector<std::vector<double>> rows(199, std::vector<double>{5.0});
  const ParzenEstimator many(space, {0}, rows, std::vector<double>(199, 1.0), 1.0);
  EXPECT_EQ(many.sigmas(0)[0], 5.0);
  EXPECT_NEAR(many.sigmas(0)[100], 0.1, kTight);
  EXPECT_EQ(many.sigmas(0)[198], 5.0);
}

TEST(ParzenEstimatorTest, DensityIsTheWeightedMixtureWithThePrior) {
  // float [0, 10], one observation at 2: n_kernels = 2, min sigma = 10/3; gaps 2 and 8 -> sigma 8.
  //   kernel at x = 2:  phi(0) / 8 / (Phi((10-2)/8) - Phi((0-2)/8))
  //                   = 0.0498678 / (Phi(1) - Phi(-0.25)) = 0.0498678 / 0.440051 =
  //                   0.113322721500707
  //   prior (5, 10):    phi(-0.3) / 10 / (Phi(0.5) - Phi(-0.5)) = 0.0381388 / 0.382925 =
  //   0.0995985878701041 p(2) = (0.113322721500707 + 0.0995985878701041) / 2 = 0.106460654685406,
  //   log = -2.23997980166593
  const SearchSpace space = Space({ParamSpec::Float("x", 0.0, 10.0)});
  const ParzenEstimator pe(space, {0}, Column({2.0}), {1.0}, 1.0);
  EXPECT_EQ(pe.sigmas(0)[0], 8.0);
  EXPECT_NEAR(pe.LogPdf({2.0}), -2.2399798016659256, kTight);
}

TEST(ParzenEstimatorTest, ForgettingWeightsAndGamma) {
  // n = 30: linspace(1/30, 1, 5) = 1/30 + k * (1 - 1/30) / 4 = 0.0333, 0.275, 0.51667, 0.75833, 1,
  // then 25 ones.
  const std::vector<double> w = DefaultWeights(30);
  ASSERT_EQ(w.size(), 30u);
  const double ramp[] = {0.03333333333333333, 0.275, 0.5166666666666667, 0.7583333333333333, 1.0};
  for (int i = 0; i < 5; ++i) EXPECT_NEAR(w[i], ramp[i], kTight) << i;
  for (int i = 5; i < 30; ++i) EXPECT_EQ(w[i], 1.0) << i;
  EXPECT_EQ(DefaultWeights(24), std::vector<double>(24, 1.0));
  EXPECT_EQ(DefaultWeights(25), std::vector<double>(25, 1.0));
  // n = 26: a ramp of one element, linspace(1/26, 1, 1) = [1/26].
  EXPECT_EQ(DefaultWeights(26)[0], 1.0 / 26.0);
  EXPECT_EQ(DefaultWeights(26)[1], 1.0);

  // gamma(n) = min(ceil(n / 10), 25).
  EXPECT_EQ(DefaultGamma(1), 1);
  EXPECT_EQ(DefaultGamma(10), 1);
  EXPECT_EQ(DefaultGamma(11), 2);
  EXPECT_EQ(DefaultGamma(100), 10);
  EXPECT_EQ(DefaultGamma(249), 25);
  EXPECT_EQ(DefaultGamma(1000), 25);

  // Mixture weights with forgetting: observation weights 0.5, 1, 1 and prior 1, W = 3.5.
  const SearchSpace space = Space({ParamSpec::Float("x", 0.0, 1.0)});
  const ParzenEstimator pe(space, {0}, Column({0.1, 0.5, 0.9}), {0.5, 1.0, 1.0}, 1.0);
  EXPECT_NEAR(pe.weights()[0], 0.5 / 3.5, kTight);
  EXPECT_NEAR(pe.weights()[3], 1.0 / 3.5, kTight);
}

TEST(ParzenEstimatorTest, CategoricalIsASmoothedCount) {
  // Choices a, b, c; observations a, a, c with weights 1; prior 1 spread as 1/3 per choice; W = 4.
  //   p(a) = (2 + 1/3) / 4 = 0.583333, p(b) = (1/3) / 4 = 0.083333, p(c) = (1 + 1/3) / 4 = 0.333333
  const SearchSpace space = Space({ParamSpec::Categorical("c", {"a", "b", "c"})});
  const ParzenEstimator pe(space, {0}, Column({0, 0, 2}), {1, 1, 1}, 1.0);
  const std::vector<double> p = pe.CategoricalProbabilities(0);
  EXPECT_NEAR(p[0], 7.0 / 12.0, kTight);
  EXPECT_NEAR(p[1], 1.0 / 12.0, kTight);
  EXPECT_NEAR(p[2], 4.0 / 12.0, kTight);
  EXPECT_NEAR(pe.LogPdf({0}), std::log(7.0 / 12.0), kTight);
  EXPECT_NEAR(pe.LogPdf({1}), std::log(1.0 / 12.0), kTight);

  // With forgetting weights 0.5, 1, 1: W = 3.5, p(a) = (0.5 + 1 + 1/3) / 3.5 = 0.523810.
  const ParzenEstimator old(space, {0}, Column({0, 0, 2}), {0.5, 1, 1}, 1.0);
  EXPECT_NEAR(old.CategoricalProbabilities(0)[0], (1.5 + 1.0 / 3.0) / 3.5, kTight);

  // Sampling follows p: 40000 draws, each frequency within 5 standard errors.
  Rng rng(11);
  int count[3] = {0, 0, 0};
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++count[static_cast<int>(pe.Sample(rng)[0])];
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(count[c] / double(n), p[c], 5 * std::sqrt(p[c] * (1 - p[c]) / n)) << "choice " << c;
  }
}

TEST(ParzenEstimatorTest, LogScaleLivesOnTheLogLine) {
  // float [1, 100] log, one observation at 10. Line [ln 1, ln 100] = [0, 4.605170]; mu = ln 10 =
  // 2.302585; gaps 2.302585 on both sides -> sigma 2.302585 (min sigma 4.605170 / 3 = 1.535057).
  // Prior: mu = 2.302585 (the geometric centre 10), sigma = 4.605170.
  const SearchSpace space = Space({ParamSpec::Float("lr", 1.0, 100.0, /*log=*/true)});
  const ParzenEstimator pe(space, {0}, Column({10.0}), {1.0}, 1.0);
  EXPECT_NEAR(pe.mus(0)[0], 2.302585092994046, kTight);
  EXPECT_NEAR(pe.sigmas(0)[0], 2.302585092994046, kTight);
  EXPECT_NEAR(pe.mus(0)[1], 2.302585092994046, kTight);
  EXPECT_NEAR(pe.sigmas(0)[1], 4.605170185988092, kTight);
  Rng rng(3);
  for (int i = 0; i < 1000; ++i) {
    const double x = pe.Sample(rng)[0];
    ASSERT_GE(x, 1.0);
    ASSERT_LE(x, 100.0);
  }
}

TEST(ParzenEstimatorTest, GridValuesOwnTheMassOfTheirCell) {
  // int [0, 10] step 2: grid 0, 2, ..., 10, line [-1, 11], range 12. Observation 4: gaps 5 and 7 ->
  // sigma 7 (min sigma 12/3 = 4). Prior: mu 5, sigma 12. The cell of 4 is [3, 5]:
  //   kernel: (Phi(1/7) - Phi(-1/7)) / (Phi(1) - Phi(-5/7))     = 0.1881307189237976
  //   prior:  (Phi(0) - Phi(-1/6)) / (Phi(1/2) - Phi(-1/2))     = 0.17283762093756883
  //   P(4) = (0.1881307189237976 + 0.17283762093756883) / 2     = 0.18048416993068322
  const SearchSpace space = Space({ParamSpec::Int("n", 0, 10, 2)});
  const ParzenEstimator pe(space, {0}, Column({4.0}), {1.0}, 1.0);
  EXPECT_EQ(pe.sigmas(0)[0], 7.0);
  EXPECT_EQ(pe.mus(0)[1], 5.0);
  EXPECT_EQ(pe.sigmas(0)[1], 12.0);
  EXPECT_NEAR(std::exp(pe.LogPdf({4.0})), 0.18048416993068322, kTight);
  // The cells tile the line, so the grid's probabilities sum to 1.
  double total = 0.0;
  for (int v = 0; v <= 10; v += 2) total += std::exp(pe.LogPdf({double(v)}));
  EXPECT_NEAR(total, 1.0, kTight);
  Rng rng(5);
  for (int i = 0; i < 1000; ++i) {
    const double x = pe.Sample(rng)[0];
    ASSERT_EQ(std::fmod(x, 2.0), 0.0) << x;
    ASSERT_GE(x, 0.0);
    ASSERT_LE(x, 10.0);
  }
}

TEST(ParzenEstimatorTest, LogIntCellsAreHalfIntegersOnTheLogLine) {
  // int [1, 100] log: line [ln 0.5, ln 100.5] = [-0.693147, 4.610158], range 5.303305.
  // Observation 10: mu = ln 10 = 2.302585; gaps 2.302585 + 0.693147 = 2.995732 and
  // 4.610158 - 2.302585 = 2.307573 -> sigma 2.995732 (min sigma 5.303305 / 3 = 1.767768).
  const SearchSpace space = Space({ParamSpec::Int("layers", 1, 100, 1, /*log=*/true)});
  const ParzenEstimator pe(space, {0}, Column({10.0}), {1.0}, 1.0);
  EXPECT_NEAR(pe.sigmas(0)[0], 2.9957322735539913, kTight);
  const auto [lo, hi] = CellOf(space.param(0), 10.0);
  EXPECT_NEAR(lo, std::log(9.5), kTight);
  EXPECT_NEAR(hi, std::log(10.5), kTight);
  double total = 0.0;
  for (int v = 1; v <= 100; ++v) total += std::exp(pe.LogPdf({double(v)}));
  EXPECT_NEAR(total, 1.0, 1e-12);
}

TEST(ParzenEstimatorTest, MultivariateSharesTheKernelIndex) {
  // Density: observations (1, 1) and (9, 9) on [0, 10]^2, weights 1/3 each with the prior. Per dim
  // the sigmas are 8 and 8 (gaps 1 | 8 | 1), the prior (5, 10). With k(x; mu, s) the truncated
  // normal density on [0, 10]:
  //   p(1, 9) = 1/3 [k(1;1,8) k(9;1,8) + k(1;9,8) k(9;9,8) + k(1;5,10) k(9;5,10)]
  // i.e. the product is taken inside each kernel, not across the marginals.
  const SearchSpace space = Space({ParamSpec::Float("x", 0, 10), ParamSpec::Float("y", 0, 10)});
  const ParzenEstimator pe(space, {0, 1}, {{1.0, 1.0}, {9.0, 9.0}}, {1.0, 1.0}, 1.0);
  auto k = [](double x, double mu, double s) {
    return std::exp(TruncNormLogPdf(x, mu, s, 0.0, 10.0));
  };
  const double expected =
      (k(1, 1, 8) * k(9, 1, 8) + k(1, 9, 8) * k(9, 9, 8) + k(1, 5, 10) * k(9, 5, 10)) / 3;
  EXPECT_NEAR(pe.LogPdf({1.0, 9.0}), std::log(expected), kTight);

  // Sampling: 10 observations near (10, 10) and 10 near (90, 90) on [0, 100]^2 (spacing 0.1, so
  // most kernels have the minimum width 100 / min(100, 1 + 21) = 4.5). With one kernel index for
  // both dims a draw lands on two different sides of 50 only through the two wide kernels at the
  // inner ends of the clusters (width 79.1) or the prior: about 3 kernels in 21, each mixing sides
  // at most half the time, so < 0.1 of draws. Sampling the dims independently mixes sides half the
  // time.
  const SearchSpace big = Space({ParamSpec::Float("x", 0, 100), ParamSpec::Float("y", 0, 100)});
  std::vector<std::vector<double>> rows, xs;
  for (int i = 0; i < 10; ++i) rows.push_back({10 + 0.1 * i, 10 + 0.1 * i});
  for (int i = 0; i < 10; ++i) rows.push_back({90 + 0.1 * i, 90 + 0.1 * i});
  for (const auto& r : rows) xs.push_back({r[0]});
  const std::vector<double> ones(20, 1.0);
  const ParzenEstimator joint(big, {0, 1}, rows, ones, 1.0);
  const ParzenEstimator x_only(big, {0}, xs, ones, 1.0);
  const ParzenEstimator y_only(big, {1}, xs, ones, 1.0);
  Rng rng(9);
  const int n = 4000;
  int mixed_joint = 0, mixed_independent = 0;
  for (int i = 0; i < n; ++i) {
    const std::vector<double> s = joint.Sample(rng);
    mixed_joint += (s[0] < 50) != (s[1] < 50);
    mixed_independent += (x_only.Sample(rng)[0] < 50) != (y_only.Sample(rng)[0] < 50);
  }
  EXPECT_LT(mixed_joint, 0.1 * n);
  EXPECT_GT(mixed_independent, 0.4 * n);
}

}  // namespace
}  // namespace pmpd::hpo
