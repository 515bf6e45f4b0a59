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
  // LabelPairTeacherForced only (instead of the two above and the outputs below): per candidate
  // the excess negative log-likelihood of the reference, nats per scored token, and the all-hi NLL.
  std::vector<double> excess_nll;
  double nll_high = 0;
  std::vector<float> k, v;    // last layer after the prefill at hi, each [kv_heads, T, head_dim]
  std::vector<int> high_ids;  // the all-hi output
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

// Several prompts and every adjacent pair of a precision ladder at once, on an engine with
// sequence slots (Engine::max_batch() >= 2 and CopySequence: the CUDA engine with max_batch, or
// LlamaModel::SetMaxBatch). Per prompt it decodes the reference run (at reference_precision,
// unless the request brings its reference), each pair's all-hi run (the reference run itself when
// the precisions agree) and each candidate's branch, which copies the all-hi run's cache once that
// run has emitted the branch's first max(c, 1) tokens and goes on at lo. Every step decodes all
// runs that are at one precision as one DecodeBatch (the weights read once for all of them), so
// runs of several prompts share the reads. The results equal LabelPairSequential's per pair (and
// GreedyGeneration's for the reference) up to floating-point rounding: exactly on engines whose
// batched rows compute what a single step computes (LlamaModel; the CUDA engine on the code-word
// GEMV, GemvKernel::kCodeWord), within the tensor-core GEMV's rounding otherwise.
// Slots: a prompt's root runs hold one slot each until they end and their branches have started;
// at most max_batch() - 1 roots hold slots at once, so branches always find one eventually.
// Cost: per prompt one prefill per distinct root run, as many decode rows as LabelPairSequential
// minus the re-decoded high prefixes, in steps of up to max_batch() rows.
struct SlotLabelRequest {
  std::vector<int> prompt;
  std::vector<int> reference_ids;  // used when has_reference (e.g. from another model)
  bool has_reference = false;
};
struct SlotLabelOptions {
  std::vector<int> precisions = {4, 3, 2};  // strictly decreasing: pairs (p[i], p[i + 1])
  std::vector<int> candidate_steps;         // increasing, each in [0, max_new_tokens)
  int max_new_tokens = 256;
  int reference_precision = 4;  // of the reference run when a request has none
  // Pair p (precisions[p] -> precisions[p + 1]) as LabelPairSequential and the others take it.
  PairLabelOptions Pair(int p) const;
};
struct SlotLabelResult {
  std::vector<int> reference_ids;  // the request's, or the reference run's output
  std::vector<PairLabel> pairs;    // one per adjacent pair, as LabelPairSequential returns it
};
absl::StatusOr<std::vector<SlotLabelResult>> LabelOnSlots(
    inference::Engine& engine, const models::Tokenizer& tok,
    absl::Span<const SlotLabelRequest> requests, const SlotLabelOptions& options);

// Teacher-forced (the excess_nll label metric): no branch is decoded; the reference continuation
// R (ids as the reference model produced them, EOS included when it stopped there) is fed through
// the model. Tokens R[1..] are scored (R[0] always comes from the prefill at hi): staying at hi
// gives nll_high[t] = -log p_hi(R[t] | prompt, R[..t)); candidate c (switch step s = max(c, 1))
// has the cache of the prompt and R[..s-1) computed at hi and predicts R[s..] at lo. Its excess is
// sum over t >= s of (-log p_lo - nll_high[t]), divided by the |R| - 1 scored tokens (0 when
// s >= |R| or |R| < 2): the mean loss per token the switch adds to that continuation. A teacher-
// forced score does not jump when one greedy token flips, which a single output's Rouge-L does.
// label = dataset::CostSwitchLabel(excess_nll, 0); pmpd-train relabels at its tolerance.
// Works on any engine. Cost: (candidates + 1) prefills and at most (candidates + 1) * (|R| - 1)
// decode steps, each copying the logits to the host and one log-sum-exp over the vocabulary.
absl::StatusOr<PairLabel> LabelPairTeacherForced(inference::Engine& engine,
                                                 absl::Span<const int> prompt,
                                                 absl::Span<const int> reference,
                                                 const PairLabelOptions& options);

// -log softmax(logits)[token], in double.
double TokenNll(absl::Span<const float> logits, int token);

}  // namespace pmpd::data_gen
