// Progressive mixed-precision generation: prefill at one precision, then let a scheduler choose the
// precision of every decode step. Switching costs nothing: the same weights (read with fewer
// planes) and the same KV cache.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/generator.h"
#include "inference/llama_model.h"
#include "scheduler_runtime/precision_scheduler.h"

namespace pmpd::scheduler {

struct ScheduledGenerationOptions {
  inference::GenerationOptions generation;
  int prefill_precision = 0;  // 0: the scheduler's highest precision
};

struct ScheduledGenerationResult {
  inference::GenerationResult generation;
  std::vector<int> token_precisions;  // precision of the pass that produced each new token
  double avg_bits = 0;                // mean of token_precisions
  double schedule_us = 0;             // time spent in the scheduler (OnPrefill + NextPrecision)
};

// Mean of `precisions` (0 for none).
double AverageBits(const std::vector<int>& precisions);

// OK when the model is any-precision and holds every precision in `precisions`; otherwise an error
// naming `model_dir` (or "the checkpoint" when empty) and the precisions it holds.
absl::Status CheckModelPrecisions(const inference::LlamaModel& model, const std::vector<int>& precisions,
                                  const std::string& model_dir = "");
// The same check for any engine, from the seed..parent bits it holds (parent 0: a plain model).
absl::Status CheckPrecisionRange(int min_bits, int max_bits, const std::vector<int>& precisions,
                                 const std::string& model_dir = "");

// Fails when the model is not any-precision or lacks a precision the scheduler may return.
// `on_token(id, precision)` may be empty. Resets the model and the scheduler first.
absl::StatusOr<ScheduledGenerationResult> GenerateScheduled(inference::LlamaModel& model,
                                                            absl::Span<const int> prompt_ids,
                                                            const ScheduledGenerationOptions& options,
                                                            PrecisionScheduler& scheduler,
                                                            const std::function<void(int, int)>& on_token = {});

}  // namespace pmpd::scheduler
