// Switch-point labels for one prompt and one precision pair (hi, lo): decode at hi, branch to lo at
// each candidate step, and label the prompt with the earliest candidate whose output is as good as
// staying at hi (Rouge-L against a reference continuation).
//
// Step convention (scheduler_runtime/precision_scheduler.h): token 0 comes from the prefill at hi;
// the branch of candidate c produces tokens [0, max(c, 1)) at hi and the rest at lo, so candidates
// 0 and 1 describe the same output. Generation is greedy and stops at EOS or max_new_tokens.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/llama_model.h"
#include "models/tokenizer.h"

namespace pmpd::data_gen {

struct PairLabelOptions {
  int high = 4, low = 3;
  std::vector<int> candidate_steps;  // increasing, each in [0, max_new_tokens)
  int max_new_tokens = 256;
};

struct PairLabel {
  int label = 0;                // index into candidate_steps, or candidate_steps.size() for "never"
  std::vector<double> rouge_l;  // per candidate: Rouge-L F of its output vs the reference
  double rouge_l_high = 0;      // Rouge-L F of the all-hi output
  std::vector<float> k, v;      // last layer after the prefill at hi, each [kv_heads, T, head_dim]
  std::vector<int> high_ids;    // the all-hi output
  std::vector<std::vector<int>> branch_ids;  // per candidate, its full output
};

// `ids` as text, without a final end-of-sequence token (the tokenizer's eos id).
std::string DecodeWithoutEos(const models::Tokenizer& tok, absl::Span<const int> ids);

// The earliest candidate whose Rouge-L, rounded to 3 decimals, is at least the all-hi Rouge-L
// rounded the same way; candidate count ("never") when none is.
int LabelFromRouge(absl::Span<const double> branch_rouge, double high_rouge);

// Batched: one prefill and one greedy decode at hi; then every branch that switches before the
// all-hi output ends runs at lo as one batch sharing the prefix cache (LlamaModel branches).
// Cost: prefill + N steps at hi + at most N batched steps at lo.
absl::StatusOr<PairLabel> LabelPairBatched(inference::LlamaModel& model,
                                           const models::Tokenizer& tok,
                                           absl::Span<const int> prompt,
                                           const std::string& reference_text,
                                           const PairLabelOptions& options);

// Sequential, as the PMPD reference does it: each branch is its own generation from the prompt
// with a static hi -> lo schedule (scheduled_generation), on any engine (the CUDA engine's
// included; the all-high run's prefill K/V is copied to the host once). The test oracle for the
// batched path and the benchmark baseline. Cost: (candidates + 1) prefills and up to
// (candidates + 1) * N steps.
absl::StatusOr<PairLabel> LabelPairSequential(inference::Engine& engine,
                                              const models::Tokenizer& tok,
                                              absl::Span<const int> prompt,
                                              const std::string& reference_text,
                                              const PairLabelOptions& options);

}  // namespace pmpd::data_gen
