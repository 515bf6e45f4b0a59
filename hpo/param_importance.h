// Parameter importance, "fANOVA-lite": how much of the spread of the objective each parameter
// explains on its own.
//
// Method, per parameter, over the complete trials (n of them, at least 10):
//   - the objective is replaced by its rank (ties share the mean rank), so a few diverged runs
//     do not decide the result;
//   - trials are put in bins: one per choice for categoricals; for numbers
//     B = clamp(floor(sqrt(n)), 2, 10) bins of equal count along the parameter's line (equal values
//     stay together);
//   - omega^2 = (SS_between - (G - 1) MS_within) / (SS_total + MS_within), clipped at 0, with G the
//     number of non-empty bins: the one-way ANOVA effect size, which unlike the raw
//     SS_between / SS_total is not inflated by the number of bins;
//   - share = omega^2 / sum of all omega^2 (0 for all when the sum is 0).
// Limits (said in the report too): main effects only, no interactions; marginal, not conditioned on
// the other parameters, so parameters that the sampler moved together (TPE does) share credit; few
// trials give noisy numbers. It is a diagnostic, not a fANOVA over a fitted surrogate.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "hpo/search_space.h"
#include "hpo/trial.h"

namespace pmpd::hpo {

struct ParamImportance {
  std::string name;
  double omega2 = 0.0;  // effect size in [0, 1)
  double share = 0.0;   // omega2 normalised over the parameters
  int bins = 0;
};

// One entry per parameter, in space order. FailedPrecondition with fewer than 10 complete trials.
absl::StatusOr<std::vector<ParamImportance>> ComputeImportance(
    const SearchSpace& space, const std::vector<FrozenTrial>& trials);

// The importances sorted by share, as a text table with the method's caveats.
std::string ImportanceText(std::vector<ParamImportance> importance);

}  // namespace pmpd::hpo
