#include "hpo/param_transform.h"

#include <algorithm>
#include <cmath>

#include "hpo/hpo_check.h"

namespace pmpd::hpo {
namespace {

double T(const ParamSpec& p, double x) { return p.log ? std::log(x) : x; }

}  // namespace

KernelLine LineOf(const ParamSpec& p) {
  PMPD_HPO_CHECK(p.type != ParamType::kCategorical, "categoricals have no line");
  const double h = p.discrete() ? 0.5 * p.step : 0.0;
  return {T(p, p.low - h), T(p, p.high + h)};
}

double ToLine(const ParamSpec& p, double v) { return T(p, v); }

double FromLine(const ParamSpec& p, double t) {
  PMPD_HPO_CHECK(p.type != ParamType::kCategorical, "categoricals have no line");
  const double x = p.log ? std::exp(t) : t;
  if (!p.discrete()) return std::clamp(x, p.low, p.high);
  const double n = std::round((p.high - p.low) / p.step);
  const double k = std::clamp(std::round((x - p.low) / p.step), 0.0, n);
  // The top of the grid is exactly `high` even where low + n * step rounds differently.
  return k == n ? p.high : p.low + k * p.step;
}

std::pair<double, double> CellOf(const ParamSpec& p, double v) {
  PMPD_HPO_CHECK(p.discrete(), "cells belong to grid parameters");
  const double h = 0.5 * p.step;
  return {T(p, v - h), T(p, v + h)};
}

}  // namespace pmpd::hpo
