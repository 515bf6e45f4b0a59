// The normal distribution truncated to an interval: the kernel of the Parzen estimators.
//
// Math, in standardised units z = (x - mu) / sigma with the interval [a, b]:
//   mass(a, b)   = Phi(b) - Phi(a),   computed in log space (LogGaussMass) so that a kernel far
//                  from a grid cell still gives a finite log-probability instead of log(0);
//   log pdf(x)   = -z^2/2 - log(sqrt(2 pi) sigma) - log mass(a, b)   for a <= z <= b;
//   sample(u)    = Phi^-1(Phi(a) + u * mass(a, b)), mirrored into the lower tail when a >= 0
//                  so that the inverse CDF is always evaluated where it is accurate.
#pragma once

namespace pmpd::hpo {

// log Phi(x), accurate in both tails (asymptotic series below x = -30). O(1).
double LogNdtr(double x);
// log(Phi(b) - Phi(a)) for a <= b; -inf when a == b. O(1).
double LogGaussMass(double a, double b);
// Phi^-1(p) for p in (0, 1); -inf/+inf at 0/1. O(1).
double Ndtri(double p);

// Log density at x of N(mu, sigma) truncated to [low, high] (x outside: -inf). sigma > 0.
double TruncNormLogPdf(double x, double mu, double sigma, double low, double high);
// Log of the mass that N(mu, sigma) truncated to [low, high] puts on [lo, hi] (clipped to the
// interval). Used for grid values: the mass of the cell [v - step/2, v + step/2].
double TruncNormLogMass(double lo, double hi, double mu, double sigma, double low, double high);
// The quantile u in [0, 1) of N(mu, sigma) truncated to [low, high]; the result lies in the
// interval. Feeding a uniform u gives a sample.
double TruncNormQuantile(double u, double mu, double sigma, double low, double high);

}  // namespace pmpd::hpo
