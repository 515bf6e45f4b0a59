#include "hpo/truncated_normal.h"

#include <gtest/gtest.h>

#include <cmath>

#include "hpo/crc32.h"
#include "hpo/rng.h"

namespace pmpd::hpo {
namespace {

// References from mpmath at 40 digits: log(ncdf(x)).
TEST(HpoTruncatedNormalTest, LogNdtrMatchesHighPrecisionInBothTails) {
  const struct {
    double x, expected;
  } cases[] = {{-40.0, -804.60844201375378817},  {-25.0, -316.63940800802025894},
               {-5.0, -15.064998393988725736},   {0.0, -0.69314718055994530942},
               {3.0, -0.0013508099647481937988}, {10.0, -7.6198530241605260704e-24}};
  for (const auto& c : cases) {
    // log Phi is evaluated from erfc (relative error ~1e-15) or the series (2e-12 at x = -30).
    EXPECT_NEAR(LogNdtr(c.x), c.expected, 1e-12 * std::fabs(c.expected)) << "x = " << c.x;
  }
}

TEST(HpoTruncatedNormalTest, LogGaussMassIsFiniteFarInTheTails) {
  // log(Phi(-30) - Phi(-31)) = -454.32124395634325204 (mpmath); the mirrored interval is the same.
  EXPECT_NEAR(LogGaussMass(-31.0, -30.0), -454.32124395634325204, 1e-9);
  EXPECT_NEAR(LogGaussMass(30.0, 31.0), -454.32124395634325204, 1e-9);
  EXPECT_NEAR(LogGaussMass(-1.0, 1.0), std::log(0.68268949213708589717), 1e-14);
  EXPECT_EQ(LogGaussMass(2.0, 2.0), -INFINITY);
}

TEST(HpoTruncatedNormalTest, NdtriInvertsPhi) {
  EXPECT_NEAR(Ndtri(1e-10), -6.3613409024040562047, 1e-12);
  EXPECT_NEAR(Ndtri(0.975), 1.9599639845400542355, 1e-13);
  EXPECT_EQ(Ndtri(0.5), 0.0);
}

TEST(HpoTruncatedNormalTest, QuantileIsTheInverseOfTheTruncatedCdf) {
  // For several kernels (inside, at the edge and outside a narrow window), mass(low, q(u)) / mass
  // must give u back.
  const struct {
    double mu, sigma, low, high;
  } kernels[] = {
      {0.0, 1.0, -1.0, 2.0}, {5.0, 0.5, 0.0, 5.0}, {-3.0, 0.3, 0.0, 1.0}, {2.0, 10.0, 0.0, 1.0}};
  for (const auto& k : kernels) {
    for (double u : {0.0, 0.01, 0.3, 0.5, 0.77, 0.999}) {
      const double x = TruncNormQuantile(u, k.mu, k.sigma, k.low, k.high);
      ASSERT_GE(x, k.low);
      ASSERT_LE(x, k.high);
      const double back =
          u == 0.0 ? 0.0 : std::exp(TruncNormLogMass(k.low, x, k.mu, k.sigma, k.low, k.high));
      EXPECT_NEAR(back, u, 1e-9) << "mu " << k.mu << " sigma " << k.sigma << " u " << u;
    }
  }
}

TEST(HpoTruncatedNormalTest, LogPdfIntegratesToOne) {
  // Midpoint rule over [low, high] with 20000 cells: error ~ (h^2 / 24) * max|f''| * range < 1e-8.
  const double mu = 0.7, sigma = 0.4, low = 0.0, high = 3.0;
  const int n = 20000;
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    const double x = low + (high - low) * (i + 0.5) / n;
    sum += std::exp(TruncNormLogPdf(x, mu, sigma, low, high)) * (high - low) / n;
  }
  EXPECT_NEAR(sum, 1.0, 1e-8);
  EXPECT_EQ(TruncNormLogPdf(3.5, mu, sigma, low, high), -INFINITY);
}

TEST(HpoCrc32Test, KnownAnswer) {
  EXPECT_EQ(Crc32("123456789"), 0xcbf43926u);
  EXPECT_EQ(Crc32(""), 0u);
}

TEST(HpoRngTest, TrialStreamsAreIndependentOfOrderAndRepeatable) {
  Rng a(Rng::TrialSeed(7, 3)), b(Rng::TrialSeed(7, 3)), c(Rng::TrialSeed(7, 4)),
      d(Rng::TrialSeed(8, 3));
  const double a0 = a.Uniform01();
  EXPECT_EQ(a0, b.Uniform01());
  EXPECT_NE(a0, c.Uniform01());
  EXPECT_NE(a0, d.Uniform01());
  // UniformInt covers its range evenly: 60000 draws in 6 bins, each within 5 sigma of 10000.
  Rng r(1);
  int count[6] = {0};
  for (int i = 0; i < 60000; ++i) ++count[r.UniformInt(6)];
  for (int k = 0; k < 6; ++k)
    EXPECT_NEAR(count[k], 10000, 5 * std::sqrt(60000 * (1.0 / 6) * (5.0 / 6)));
}

}  // namespace
}  // namespace pmpd::hpo
