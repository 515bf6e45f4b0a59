// Precision schedulers: who decides the weight precision of every generated token.
//
// Timeline of one sequence: the prompt is prefilled at the prefill precision and its logits give
// generated token 0; the forward pass that produces token k >= 1 runs at NextPrecision(k, ...).
// "Step k" is the production of generated token k, so a static schedule 4,3,2 with switch steps
// 16,64 produces tokens [0,16) at 4 bits (token 0 at the prefill precision), [16,64) at 3, the
// rest at 2.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/engine.h"

namespace pmpd::scheduler {

class PrecisionScheduler {
 public:
  virtual ~PrecisionScheduler() = default;
  // Forgets the previous sequence. Called before each prefill.
  virtual void Reset() = 0;
  // Called once after prefill with the engine's last-layer cache (a view: reading it is the only
  // cost, so schedulers that ignore it cost nothing); may fail (e.g. a classifier that does not fit
  // the model).
  virtual absl::Status OnPrefill(const inference::KvView& kv) = 0;
  // Precision of the forward pass that produces generated token `step` (>= 1).
  virtual int NextPrecision(int step, int current_precision,
                            absl::Span<const float> last_logits) = 0;
  // The precisions it may return, highest first (for validation against the checkpoint).
  virtual const std::vector<int>& precisions() const = 0;
  virtual std::string Describe() const = 0;
};

// Static schedule: precisions[i] for steps [switch_steps[i-1], switch_steps[i]) (cumulative; one
// precision = a uniform baseline). Errors: empty list, precisions not strictly decreasing or
// outside 2..8, switch steps not one fewer than precisions, negative or not non-decreasing.
absl::StatusOr<std::unique_ptr<PrecisionScheduler>> MakeStaticScheduler(
    std::vector<int> precisions, std::vector<int> switch_steps);

// "4,3,2" -> {4,3,2}; errors name `flag` and the bad item.
absl::StatusOr<std::vector<int>> ParseIntList(const std::string& text, const std::string& flag);

// The one check of a precision ladder (schedules, gen-data, training, evaluation): at least
// `min_size` bit widths, each in 2..8, strictly decreasing (high to low). Errors name `what` (the
// caller's option) and the whole list. A checkpoint's range is checked by CheckPrecisionRange.
absl::Status CheckPrecisionLadder(const std::vector<int>& precisions, size_t min_size,
                                  const std::string& what = "precisions");
// ParseIntList + CheckPrecisionLadder: "5,4,3" -> {5,4,3}, or an error naming `what`.
absl::StatusOr<std::vector<int>> ParsePrecisionLadder(const std::string& text, size_t min_size,
                                                      const std::string& what);

}  // namespace pmpd::scheduler
