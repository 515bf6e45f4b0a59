// Fits one KV-cache classifier (scheduler_runtime/kv_classifier_module.h) for one precision pair of
// a pmpd-gen-data file: deterministic train/validation split, class balancing, AdamW with gradient
// accumulation, early stopping on validation loss, a checkpoint per epoch (resumable, bit-exact).
// LibTorch-free header.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "scheduler_runtime/kv_classifier.h"
#include "trainer/classification_metrics.h"

namespace pmpd::trainer {

struct TrainOptions {
  int epochs = 30;
  double lr = 1e-3;
  double weight_decay = 1e-2;
  double dropout = 0.1;
  int grad_accum = 1;   // optimizer step every this many batches
  int batch_size = 16;  // prompts per batch, padded to the longest with a mask
  double val_fraction = 0.1;
  // Held out from training and from early stopping; the best epoch's weights are scored on it
  // once at the end (TrainResult::test). 0: no test split (the validation split is the held-out
  // one).
  double test_fraction = 0;
  uint64_t seed = 0;
  std::string device = "cpu";  // cpu or cuda
  // weighted: cross-entropy weights n / (classes * n_c) (default: every sample seen once per epoch,
  // no repeated minority samples to overfit); oversample: the reference's way, minority classes
  // resampled up to the largest class each epoch; none.
  std::string balance = "weighted";
  int patience = 5;  // early stopping: epochs without a better validation loss
  // > 0: labels recomputed from the file's values with this tolerance (dataset::RelabelSample:
  // a Rouge-L F difference for rouge_l files, below 1; nats per token for excess_nll files)
  // instead of the stored ones (tolerance 0).
  double label_tolerance = 0;
  // Empty: the file's candidate switch steps. Otherwise a subset of them, increasing (e.g. {0, 48}
  // of a file labelled at {0, 12, 24, 48}): labels re-derived from those steps' values
  // (dataset::RelabelSample at label_tolerance), fewer classes from the same labelling run. The
  // exported classifier then switches only at these steps.
  std::vector<int64_t> candidate_steps;
  // The prompt length as one more classifier input (architecture "pmpd-reference+prompt-length",
  // scheduler_runtime/kv_classifier_module.h); false: the reference architecture.
  bool prompt_length_input = false;
  std::string checkpoint_dir;  // empty: no checkpoints (no resume)
};

struct EpochMetrics {
  int epoch = 0;  // 1-based
  double train_loss = 0, val_loss = 0, seconds = 0;
  ClassificationMetrics val;
};

struct TrainResult {
  int64_t high = 0, low = 0;
  std::vector<int64_t> candidate_steps;
  std::vector<EpochMetrics> epochs;  // every epoch run, resumed ones included
  int best_epoch = 0;                // lowest validation loss; its weights are `state`
  scheduler::ClassifierState state;
  scheduler::KvClassifierSpec spec;
  int train_samples = 0, val_samples = 0;
  std::vector<int64_t> train_class_counts, val_class_counts;
  double label_tolerance = 0;      // the labels' tolerance (TrainOptions::label_tolerance)
  std::string label_metric;        // the data file's (its unit: Rouge-L F or nats per token)
  int majority_class = 0;          // of the training split
  ClassificationMetrics majority;  // predicting it for every validation sample
  // The test split (test_fraction > 0): the returned weights' scores and the majority class's.
  int test_samples = 0;
  std::vector<int64_t> test_class_counts;
  ClassificationMetrics test, majority_test;
  int resumed_epochs = 0;  // epochs found in the checkpoint
  bool stopped_early = false;
  std::string device;
};

// Whether LibTorch sees a CUDA device (for --device auto).
bool CudaAvailable();

// OK when every option is in range (device "cpu" or "cuda": resolve "auto" first); otherwise an
// InvalidArgument error naming the flag. TrainPairClassifier checks the same before it starts;
// callers check early to refuse bad flags before reading any data.
absl::Status CheckTrainOptions(const TrainOptions& options);

// Where TrainOptions::candidate_steps lie among a data file's candidate steps (empty: all of them,
// in order), or an InvalidArgument error naming `data_path`, the step and the file's steps.
// TrainPairClassifier checks it; pmpd-train and pmpd-hypertune call it before training starts.
absl::StatusOr<std::vector<size_t>> CandidateStepIndices(const std::vector<int64_t>& steps,
                                                         const std::vector<int64_t>& file_steps,
                                                         const std::string& data_path);

// --label-tolerance as given: one value for every pair ("0.01") or one per adjacent pair of the
// ladder, high to low ("0.03,0.2"); each >= 0 and finite. `pairs` = ladder size - 1.
absl::StatusOr<std::vector<double>> ParseLabelTolerances(const std::string& text, size_t pairs);

// Whether `tolerance` suits the file's label metric (below 1 for Rouge-L F); errors name the file.
absl::Status CheckLabelTolerance(const std::string& label_metric, double tolerance,
                                 const std::string& data_path);

// --candidate-steps as given: empty text gives no subset (the file's steps), else the list.
absl::StatusOr<std::vector<int64_t>> ParseCandidateSteps(const std::string& text);

// What pmpd-train and pmpd-hypertune check against a data file before any training: the step
// subset is among the file's steps (CandidateStepIndices) and each pair's tolerance suits the
// file's label metric (CheckLabelTolerance). Errors name `data_path`.
absl::Status CheckLabelOptions(const std::string& label_metric,
                               const std::vector<int64_t>& file_steps,
                               const std::vector<int64_t>& steps,
                               const std::vector<double>& tolerances, const std::string& data_path);

// Trains the (hi, lo) classifier of `data_path`. `on_epoch` sees each finished epoch (resumed ones
// are not replayed) and may return false to stop training there (a pruner, a time limit): the best
// weights so far are returned and a rerun with the same checkpoint_dir continues after that epoch.
// Errors: the pair missing from the file, too few samples, bad options,
// --device cuda without CUDA. Cost: epochs x (samples x O(H^2 T D)).
absl::StatusOr<TrainResult> TrainPairClassifier(
    const std::string& data_path, int hi, int lo, const TrainOptions& options,
    const std::function<bool(const EpochMetrics&)>& on_epoch = {});

}  // namespace pmpd::trainer
