// pmpd-gen-data's job: stream documents, cut prompts, make reference continuations, label every
// adjacent precision pair (switch_labeler.h) and store the samples (kv_dataset.h).
//
// Crash safety: samples are written in small complete HDF5 files, OUT.partial/seg_<first>_<last>.h5
// (temporary file + fsync + rename, every `flush_every` samples); a rerun with the same options
// skips the documents those hold. When the shard is done the segments are joined into OUT
// (temporary + rename) and removed. So OUT is either absent or complete, and a kill -9 loses at
// most the samples since the last segment.
//
// Sharding: document d (its index among the usable documents of the source, in file order) belongs
// to shard d % n. Prompt cuts are seeded from (seed, d), so a document gets the same sample in any
// shard; MergeGenDataShards orders samples by d, which is the order of an unsharded run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "dataset/kv_dataset.h"
#include "inference/engine.h"

namespace pmpd::data_gen {

struct GenDataOptions {
  std::string model_dir;
  std::string source;  // C4 JSON-lines: a file, a directory or a glob
  std::string out;     // FILE.h5
  std::vector<int> precisions = {4, 3, 2};
  std::vector<int> candidate_steps;  // empty: {0, N/3, 2N/3} for N = max_new_tokens
  int num_docs = 64;  // documents taken from the start of the source (all shards together)
  int max_new_tokens = 256;
  int max_prompt_tokens = 2048;  // further bounded by the context minus max_new_tokens
  int min_prefix_tokens = 32;    // prompts are cut to [min(this, L/2), L] tokens
  // Non-empty: each prompt is the model's chat template around the user message
  // "<chat_instruction>\n\n<document prefix>" (the prefix cut as above, within what the template
  // leaves of the cap), so the labels come from the prompts an instruct model is used with.
  std::string chat_instruction;
  std::string chat_template = "auto";  // with chat_instruction: auto (the model's own) or a name
  uint64_t seed = 0;
  int shard_index = 0, shard_count = 1;
  std::string
      reference_model;  // float checkpoint for the reference output; empty: reference_precision
  int reference_precision = 0;  // 0: the checkpoint's parent (highest) precision
  int flush_every = 8;
  int stop_after =
      0;  // > 0: stop (resumably) after computing this many samples, e.g. for time-boxed jobs
  // dataset::kLabelRougeL: each branch decoded greedily, scored by Rouge-L against the reference
  // text (the PMPD reference's labels); dataset::kLabelExcessNll: the reference continuation
  // teacher-forced through each switch (LabelPairTeacherForced), no branch decoded.
  std::string label_metric = dataset::kLabelRougeL;
  bool batched_branches = true;  // false: one generation per branch (the reference's way; slower)
  // Sequence slots of the engine (0: 8 on CUDA, 1 on the CPU). Above 1, and with batched branches
  // and the rouge_l metric, up to flush_every prompts are labelled together (LabelOnSlots): the
  // reference, all-high and branch runs of all of them decode as shared batched steps, branches
  // copying their all-high run's cache. With 1, the CPU batches one prompt's branches through its
  // branch cache (LabelPairBatched) and CUDA labels sequentially. Same labels every way up to
  // float rounding; K/V stored in fp16 as always. CUDA slots each hold a cache of
  // max_prompt_tokens + max_new_tokens positions (fp32 unless kv_cache_fp16).
  int batch = 0;
  bool kv_cache_fp16 = false;  // CUDA: the engine's KV cache in fp16 (less memory, more rounding)
  // CUDA, batch > 1: the tensor-core GEMV for steps of several rows (faster from 3-5 rows). Off,
  // every row is computed as a single step would compute it, so the labels do not depend on
  // --batch, --flush-every or a resume; on, a run's tokens depend on which runs share its steps
  // (by float rounding), and the file records neither.
  bool tensor_core_rows = false;
  // The engine for the model and the reference model (LoadEngine).
  inference::Device device = inference::Device::kCpu;
};

struct GenDataProgress {
  int64_t done = 0, total = 0;  // samples of this shard
  int64_t resumed = 0;          // of `done`, found on disk at start
  double samples_per_s = 0, eta_s = 0;
};

struct GenDataReport {
  int64_t samples = 0, resumed = 0, computed = 0;
  int64_t malformed_lines = 0, empty_texts = 0;
  double seconds = 0, samples_per_s = 0;  // computed samples only
  bool already_complete = false;          // OUT existed with the same configuration
  int batch = 1;  // sequence slots the labelling decoded on together (1: one prompt at a time)
  int64_t engine_device_bytes = 0;  // GPU memory the engines held (weights, caches, buffers)
  bool stopped_early = false;       // --stop-after reached: OUT not written yet, rerun to continue
  // Per pair (high to low): counts per class (candidate steps..., never).
  std::vector<std::vector<int64_t>> class_counts;
  std::vector<int64_t> candidate_steps;
  std::string label_metric = dataset::kLabelRougeL;  // the file's
  // excess_nll files: per pair, per candidate step, the median excess NLL (nats per token) over the
  // samples (which tolerance gives which classes); empty for rouge_l files.
  std::vector<std::vector<double>> median_excess_nll;
};

// Resolves the default candidate steps: {0, N/3, 2N/3} (duplicates removed).
std::vector<int> DefaultCandidateSteps(int max_new_tokens);

// Runs (or resumes, or recognises as done) the job. `progress` is called after every sample.
absl::StatusOr<GenDataReport> RunGenData(
    const GenDataOptions& options,
    const std::function<void(const GenDataProgress&)>& progress = {});

// Joins shard files i/n (each complete, same configuration, every i in [0, n) exactly once) into
// `out`, samples ordered by document index: equal to an unsharded run.
absl::Status MergeGenDataShards(const std::vector<std::string>& parts, const std::string& out);

// Class counts per pair of a finished file, for the balance report.
absl::StatusOr<GenDataReport> SummarizeGenData(const std::string& path);

}  // namespace pmpd::data_gen
