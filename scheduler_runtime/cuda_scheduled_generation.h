// PMPD generation on the CUDA engine: the same timeline, scheduler calls and stopping rules as
// GenerateScheduled on the CPU engine (scheduled_generation.h), so both give the same tokens for
// the same schedule. Built only with CUDA (target pmpd_scheduler_runtime_cuda).
#pragma once

#include <functional>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/cuda_engine.h"
#include "scheduler_runtime/eval/evaluation.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace pmpd::scheduler {

// `scheduler` may be null: the engine's current precision throughout (plain fp16 models too).
// Greedy decoding copies 4 bytes per step back from the GPU; sampling (temperature > 0) copies the
// logits and samples on the CPU. The scheduler sees an empty logits span when decoding is greedy
// (neither shipped scheduler reads them). Fails like GenerateScheduled.
absl::StatusOr<ScheduledGenerationResult> GenerateScheduledCuda(
    inference::CudaEngine& engine, absl::Span<const int> prompt_ids,
    const ScheduledGenerationOptions& options, PrecisionScheduler* scheduler,
    const std::function<void(int, int)>& on_token = {});

// The CUDA engine behind the evaluation harness (GenerateScheduledCuda): borrowed (the engine must
// outlive the generator) or owned.
std::unique_ptr<ScheduledGenerator> MakeCudaGenerator(inference::CudaEngine& engine);
std::unique_ptr<ScheduledGenerator> MakeCudaGenerator(std::unique_ptr<inference::CudaEngine> engine);

}  // namespace pmpd::scheduler
