// The evaluation harness behind pmpd-eval: run decoding methods (uniform high, uniform low, static
// PMPD, ...) over a task's prompts, score them against references, and calibrate the static
// schedule (prefill precision + switch steps) on a calibration split.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/eval_tasks.h"
#include "inference/engine.h"
#include "models/chat_template.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace pmpd::eval {

struct EvalMethod {
  std::string name;  // "high", "low", "static", ...
  int prefill_precision = 0;
  std::vector<int> precisions;    // high to low
  std::vector<int> switch_steps;  // one per adjacent pair
  std::string
      classifier_dir;  // non-empty: the learned scheduler with these classifiers (pmpd-train)
  double switch_quantile =
      0;  // the learned scheduler's decision rule (scheduler::LearnedSchedulerOptions)
  std::string Describe() const;
};

struct EvalRow {
  std::string method, schedule;
  double avg_bits = 0;
  double quality = 0;  // mean Rouge-L F (x100) or corpus BLEU
  // With a second reference (pmpd-eval --reference both): the same metric against the model's own
  // high-precision outputs; negative when not computed.
  double quality_vs_model = -1;
  double tokens_per_s = 0;
  double scheduler_us_per_prompt =
      0;                          // scheduler time per prompt (the learned one: its classifiers)
  double decode_us_per_step = 0;  // for comparison: one single-token forward pass
  int examples = 0;
  std::vector<std::string> outputs;
  // Per example, in prompt order: average bits of its generated tokens, and (Rouge-L tasks) its
  // quality against the references and, with a second reference, against the model's outputs.
  // The paired comparisons of two methods on the same prompts (PairedDifference) read these.
  std::vector<double> example_bits, example_quality, example_quality_vs_model;
};

// A task's prompts as the model reads them, with what ends an answer besides the model's EOS.
struct EvalPrompts {
  // Per example: BOS first (as the tokenizer does), the chat template applied.
  std::vector<std::vector<int>> ids;
  std::vector<int> stop_ids;           // the chat template's end of turn; empty without one
  std::string chat_template = "none";  // the template's name, or "none"
  size_t size() const { return ids.size(); }
};

// Prompt token ids for every example, each shortened (its content cut at a word boundary) until
// prompt + max_new_tokens fits the model's context. `chat` non-null: the prompt (prefix + content +
// suffix) is the user message of a conversation in that template (its default system message, the
// assistant's turn opened), and the budget counts the template's tokens. O(examples * log(len))
// encodes.
EvalPrompts FitPrompts(const EvalTask& task, const models::Tokenizer& tok, int context,
                       int max_new_tokens, const models::ChatTemplate* chat = nullptr);

// Greedy continuations of `prompts` as text without the stop token (the "model" reference), as
// scheduler::GreedyGeneration (scheduled_generation.h) with the prompts' stop ids.
absl::StatusOr<std::vector<std::string>> GreedyOutputs(inference::Engine& model,
                                                       const models::Tokenizer& tok,
                                                       const EvalPrompts& prompts,
                                                       int max_new_tokens, int precision = 0);

// Quality of outputs against per-example references: mean over examples of the best Rouge-L F
// (x100) over an example's references, or corpus BLEU with every reference stream; and, for
// Rouge-L, each example's score (empty for BLEU, a corpus-level metric). One Rouge-L per example.
struct QualityScores {
  double quality = 0;
  std::vector<double> per_example;
};
QualityScores Score(QualityMetric metric, const std::vector<std::string>& outputs,
                    const std::vector<std::vector<std::string>>& references);
// Score(...).quality.
double Quality(QualityMetric metric, const std::vector<std::string>& outputs,
               const std::vector<std::vector<std::string>>& references);

// a - b on the same examples (a paired comparison of two methods): the mean difference and its
// standard error, sd(a_i - b_i) / sqrt(n) (sample sd, n - 1). n < 2 or unequal sizes: n = 0.
struct PairedDifference {
  double mean = 0, standard_error = 0;
  int n = 0;
};
PairedDifference Paired(const std::vector<double>& a, const std::vector<double>& b);

// Runs one method greedily over the prompts (a static schedule, or the learned scheduler when
// method.classifier_dir is set), stopping at EOS and the prompts' stop ids; outputs are the text
// without the stop token. `progress(done, total)` per prompt.
absl::StatusOr<EvalRow> RunMethod(inference::Engine& model, const models::Tokenizer& tok,
                                  const EvalMethod& method, const EvalPrompts& prompts,
                                  const std::vector<std::vector<std::string>>& references,
                                  QualityMetric metric, int max_new_tokens,
                                  const std::function<void(int, int)>& progress = {});

struct CalibrationResult {
  EvalMethod chosen;
  EvalRow chosen_row;  // its row on the calibration prompts (outputs cleared); empty when none was
                       // feasible
  double reference_quality = 0;  // uniform-high quality on the calibration split
  std::vector<EvalRow> candidates;
  std::vector<double> candidate_quantiles;  // CalibrateLearned: each candidate's switch quantile
};

// Searches the prefill precision (each of `precisions`) and non-decreasing switch steps on the grid
// {0, N/8, N/4, N/2, 3N/4, N} (N = max_new_tokens), minimising average bits subject to
// quality >= q_ref - epsilon on the calibration prompts, q_ref being uniform high precision.
absl::StatusOr<CalibrationResult> CalibrateStatic(
    inference::Engine& model, const models::Tokenizer& tok, const std::vector<int>& precisions,
    const EvalPrompts& prompts, const std::vector<std::vector<std::string>>& references,
    QualityMetric metric, int max_new_tokens, double epsilon,
    const std::function<void(int, int)>& progress = {});

// The learned scheduler's counterpart of CalibrateStatic: tries the switch quantiles
// kLearnedQuantileGrid (0 = argmax included) on the calibration prompts, prefill at the high
// precision (the classifiers read its KV cache). max_avg_bits < 0: the fewest average bits subject
// to quality >= q_ref - epsilon, as the static search. max_avg_bits >= 0 (a bit budget, e.g. the
// calibrated static schedule's average bits on the same prompts): the best quality within it,
// among the grid and kLearnedQuantileRefinements quantiles bisected between the grid's last
// quantile within the budget and the next one (average bits grow with the quantile: each prompt's
// switch comes later), so the choice can come near the budget instead of a grid step under it.
// Nothing feasible: the best quality (quality rule) or the fewest bits (budget).
// reference_quality < 0: measured here (uniform high); pass CalibrateStatic's to save that run.
// Cost: grid size (+ 1) (+ refinements) runs over the prompts.
inline constexpr double kLearnedQuantileGrid[] = {0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
inline constexpr int kLearnedQuantileRefinements = 3;
// A quantile as schedules print it: at least 2 decimals, up to 4 ("0.20", "0.1125").
std::string FormatQuantile(double q);
absl::StatusOr<CalibrationResult> CalibrateLearned(
    inference::Engine& model, const models::Tokenizer& tok, const std::vector<int>& precisions,
    const std::string& classifier_dir, const EvalPrompts& prompts,
    const std::vector<std::vector<std::string>>& references, QualityMetric metric,
    int max_new_tokens, double epsilon, double max_avg_bits = -1, double reference_quality = -1,
    const std::function<void(int, int)>& progress = {});

// Report writers. Each returns an error naming the file it could not write.
absl::Status WriteEvalCsv(const std::string& path, const std::vector<EvalRow>& rows);
// Quality against average bits, one labelled point per method, with the straight line from the
// lowest-bit row to the highest-bit row (the interpolation PMPD should beat).
absl::Status WriteEvalSvg(const std::string& path, const std::string& title,
                          const std::string& quality_name, const std::vector<EvalRow>& rows);

}  // namespace pmpd::eval
