// Progressive mixed-precision generation: prefill at one precision, then let a scheduler choose the
// precision of every decode step. Switching costs nothing: the same weights (read with fewer
// planes) and the same KV cache.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/engine.h"
#include "inference/generator.h"
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

// OK when the engine's seed..parent bits (min_bits..max_bits; max_bits 0: a plain model) hold every
// precision in `precisions`; otherwise an error naming `model_dir` (or "the checkpoint" when empty)
// and the precisions it holds.
absl::Status CheckPrecisionRange(int min_bits, int max_bits, const std::vector<int>& precisions,
                                 const std::string& model_dir = "");

// Everything GenerateScheduled checks before it generates (CheckGeneration, and every precision
// the scheduler may use, the prefill's included, held by the engine), without generating.
absl::Status CheckScheduledGeneration(const inference::Engine& engine,
                                      absl::Span<const int> prompt_ids,
                                      const ScheduledGenerationOptions& options,
                                      const PrecisionScheduler* scheduler);

// PMPD generation on any engine, through inference::Generate (the one loop): resets the engine and
// the scheduler, prefills at options.prefill_precision (0: the scheduler's highest), hands the
// scheduler the prefill cache (a view, KvView: no copy) and lets it choose the precision of every
// decode step. `scheduler` null: the engine's current precision throughout (plain models too).
// token_precisions records the precision of the pass that produced each token on every path (0 on
// plain engines). Fails when the engine lacks a precision the scheduler may return.
// `on_token(id, precision)` may be empty.
absl::StatusOr<ScheduledGenerationResult> GenerateScheduled(
    inference::Engine& engine, absl::Span<const int> prompt_ids,
    const ScheduledGenerationOptions& options, PrecisionScheduler* scheduler,
    const std::function<void(int, int)>& on_token = {});

// Greedy generation at one precision, as GenerateScheduled: `precision` > 0 runs a one-precision
// static schedule, 0 the engine's current precision (plain models too). Stops at the model's EOS
// and at `stop_ids` (new_ids end with the token that stopped it).
absl::StatusOr<inference::GenerationResult> GreedyGeneration(inference::Engine& engine,
                                                             absl::Span<const int> prompt,
                                                             int max_new_tokens, int precision = 0,
                                                             absl::Span<const int> stop_ids = {});

}  // namespace pmpd::scheduler
