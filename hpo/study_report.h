// Human-facing outputs of a study: the trials as CSV, a leaderboard, the optimisation history as
// an SVG plot. Pure functions of the trials; the writer puts them next to each other on disk.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "hpo/search_space.h"
#include "hpo/trial.h"

namespace pmpd::hpo {

// number,state,value,<param names in space order>,duration_s,attempts — one row per trial, values
// in full precision (shortest round-trip form), empty where absent, RFC 4180 quoting.
std::string TrialsCsv(const SearchSpace& space, const std::vector<FrozenTrial>& trials);

// The best `top_k` complete trials as an aligned text table (rank, trial, value, params).
std::string Leaderboard(const SearchSpace& space, const std::vector<FrozenTrial>& trials,
                        Direction direction, int top_k);

// A self-contained SVG: one dot per complete trial (value over trial number) and the best-so-far
// line. Pruned and failed trials are left out (their values are not comparable). O(trials).
std::string HistorySvg(const std::vector<FrozenTrial>& trials, Direction direction,
                       absl::string_view title);

// Writes out_dir/trials.csv, leaderboard.txt, history.svg and importance.txt (importance.txt says
// why when importance cannot be computed yet).
absl::Status WriteStudyReport(const std::string& out_dir, const SearchSpace& space,
                              const std::vector<FrozenTrial>& trials, Direction direction,
                              int top_k = 10);

}  // namespace pmpd::hpo
