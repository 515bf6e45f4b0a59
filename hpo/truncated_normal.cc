#include "hpo/truncated_normal.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "hpo/hpo_check.h"

namespace pmpd::hpo {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSqrt2 = 1.4142135623730950488;
constexpr double kLogSqrt2Pi = 0.91893853320467274178;  // log(sqrt(2 pi))

// log(exp(x) - exp(y)) for x >= y.
double LogDiff(double x, double y) {
  if (y == -kInf) return x;
  if (x <= y) return -kInf;
  return x + std::log1p(-std::exp(y - x));
}

// Inverse of LogNdtr: x with log Phi(x) = log_p (log_p <= 0).
double NdtriExp(double log_p) {
  if (log_p == -kInf) return -kInf;
  if (log_p > -700.0) return Ndtri(std::exp(log_p));
  // Far lower tail: Newton on log Phi(x) = log_p from the leading asymptotic term; log Phi is
  // concave so Newton converges monotonically.
  double x = -std::sqrt(-2.0 * log_p);
  for (int i = 0; i < 50; ++i) {
    const double f = LogNdtr(x) - log_p;
    const double slope = std::exp(-0.5 * x * x - kLogSqrt2Pi - LogNdtr(x));
    const double step = f / slope;
    x -= step;
    if (std::fabs(step) <= 1e-14 * std::fabs(x)) break;
  }
  return x;
}

}  // namespace

double LogNdtr(double x) {
  if (x > 6.0) return std::log1p(-0.5 * std::erfc(x / kSqrt2));
  if (x > -30.0) return std::log(0.5 * std::erfc(-x / kSqrt2));
  // Phi(x) = phi(x)/(-x) * (1 - 1/x^2 + 3/x^4 - 15/x^6 + 105/x^8 - ...); at x = -30 the next
  // term (945/x^10) is 2e-12 relative.
  const double r = 1.0 / (x * x);
  const double series = 1.0 - r * (1.0 - 3.0 * r * (1.0 - 5.0 * r * (1.0 - 7.0 * r)));
  return -0.5 * x * x - kLogSqrt2Pi - std::log(-x) + std::log(series);
}

double LogGaussMass(double a, double b) {
  PMPD_HPO_CHECK(a <= b, "LogGaussMass needs a <= b");
  if (b <= 0.0) return LogDiff(LogNdtr(b), LogNdtr(a));
  if (a > 0.0) return LogGaussMass(-b, -a);
  // Straddling zero: 1 - Phi(a) - Phi(-b), both terms at most 1/2, no cancellation.
  return std::log1p(-0.5 * std::erfc(-a / kSqrt2) - 0.5 * std::erfc(b / kSqrt2));
}

double Ndtri(double p) {
  if (p <= 0.0) return -kInf;
  if (p >= 1.0) return kInf;
  // Acklam's rational approximation (relative error 1.2e-9), then one Halley step on erfc,
  // which brings it to double precision.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  constexpr double kLow = 0.02425;
  double x;
  if (p < kLow) {
    const double q = std::sqrt(-2.0 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  } else if (p <= 1.0 - kLow) {
    const double q = p - 0.5;
    const double r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
  } else {
    const double q = std::sqrt(-2.0 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
  }
  const double e = 0.5 * std::erfc(-x / kSqrt2) - p;
  const double u = e * std::sqrt(2.0 * M_PI) * std::exp(0.5 * x * x);
  return x - u / (1.0 + 0.5 * x * u);
}

double TruncNormLogPdf(double x, double mu, double sigma, double low, double high) {
  PMPD_HPO_CHECK(sigma > 0.0 && low < high);
  if (x < low || x > high) return -kInf;
  const double z = (x - mu) / sigma;
  return -0.5 * z * z - kLogSqrt2Pi - std::log(sigma) -
         LogGaussMass((low - mu) / sigma, (high - mu) / sigma);
}

double TruncNormLogMass(double lo, double hi, double mu, double sigma, double low, double high) {
  PMPD_HPO_CHECK(sigma > 0.0 && low < high);
  lo = std::max(lo, low);
  hi = std::min(hi, high);
  if (lo >= hi) return -kInf;
  return LogGaussMass((lo - mu) / sigma, (hi - mu) / sigma) -
         LogGaussMass((low - mu) / sigma, (high - mu) / sigma);
}

double TruncNormQuantile(double u, double mu, double sigma, double low, double high) {
  PMPD_HPO_CHECK(sigma > 0.0 && low < high && u >= 0.0 && u <= 1.0);
  const double a = (low - mu) / sigma;
  const double b = (high - mu) / sigma;
  const double log_mass = LogGaussMass(a, b);
  double z;
  if (a < 0.0) {
    // log(Phi(a) + u * mass) = logaddexp(log Phi(a), log u + log mass)
    const double l1 = LogNdtr(a);
    const double l2 = u > 0.0 ? std::log(u) + log_mass : -kInf;
    const double hi = std::max(l1, l2), lo = std::min(l1, l2);
    z = NdtriExp(hi == -kInf ? -kInf : hi + std::log1p(std::exp(lo - hi)));
  } else {
    // Mirror: z = -Phi^-1(Phi(-b) + (1 - u) * mass), evaluated in the lower tail.
    const double l1 = LogNdtr(-b);
    const double l2 = u < 1.0 ? std::log1p(-u) + log_mass : -kInf;
    const double hi = std::max(l1, l2), lo = std::min(l1, l2);
    z = -NdtriExp(hi == -kInf ? -kInf : hi + std::log1p(std::exp(lo - hi)));
  }
  return std::clamp(mu + sigma * z, low, high);
}

}  // namespace pmpd::hpo
