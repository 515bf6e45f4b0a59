// Where a numerical parameter's kernels live. Samplers model every float/int parameter on a line:
// log(x) for log-scale parameters, x otherwise. Grid parameters (int, float with a step) own the
// cell [v - step/2, v + step/2] around each grid value v, so their line is widened by half a step
// at both ends and every grid value gets the same width of line.
//
//   uniform float [low, high]       line [low, high]
//   float step q / int step q       line [low - q/2, high + q/2], cell(v) = [v - q/2, v + q/2]
//   log float                       line [log low, log high]
//   log int (step 1)                line [log(low - 1/2), log(high + 1/2)],
//                                   cell(v) = [log(v - 1/2), log(v + 1/2)]
#pragma once

#include <utility>

#include "hpo/search_space.h"

namespace pmpd::hpo {

struct KernelLine {
  double low = 0.0, high = 0.0;
  double range() const { return high - low; }
};

// The line of a float/int parameter (CHECK-fails on categoricals). O(1).
KernelLine LineOf(const ParamSpec& p);
// A value's position on the line.
double ToLine(const ParamSpec& p, double v);
// The value at position t: exp'd for log scale, snapped to the grid, clamped to [low, high].
double FromLine(const ParamSpec& p, double t);
// The cell of grid value v on the line (discrete parameters only).
std::pair<double, double> CellOf(const ParamSpec& p, double v);

}  // namespace pmpd::hpo
