// The learned scheduler's training data: per adjacent precision pair, the last layer's KV cache
// after prefill and the switch-step label of each prompt, in one HDF5 file written by
// pmpd-gen-data and read by pmpd-train. The layout is documented in docs/gen-data-format.md (a test
// checks that document against real files); this is the only code that knows it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace pmpd::models {
class Hdf5File;
}

namespace pmpd::dataset {

inline constexpr char kKvDatasetFormat[] = "pmpd-kv-dataset";
inline constexpr int64_t kKvDatasetVersion = 1;
inline constexpr char kLabelRougeL[] = "rouge_l";
inline constexpr char kLabelExcessNll[] = "excess_nll";

// Root attributes: what produced the samples. Two files may be joined (resume, merge) only when
// everything but `shard` is equal.
struct KvDatasetHeader {
  std::string tool_version;
  std::string model_path, model_fingerprint;
  std::string reference, reference_fingerprint;  // "model:<dir>" or "precision:<bits>"
  std::string source;                            // the C4 input as given (file, directory or glob)
  // How a document became a prompt: "text" (a prefix of the document, continued as text) or
  // "chat:<template>:<instruction>" (the prefix as the user message "<instruction>\n\n<prefix>" in
  // the model's chat template). Files without the attribute are "text".
  std::string prompt_format = "text";
  // What the per-candidate values measure (and so how labels follow from them): kLabelRougeL
  // (rouge_l / rouge_l_high: each branch's greedy output against the reference text) or
  // kLabelExcessNll (excess_nll / nll_high: the reference continuation teacher-forced through
  // each switch). Files without the attribute are "rouge_l".
  std::string label_metric = "rouge_l";
  std::vector<int64_t> precisions;       // high to low, e.g. {4, 3, 2}
  std::vector<int64_t> candidate_steps;  // switch steps tried, increasing, e.g. {0, 85, 170}
  int64_t max_new_tokens = 0, max_prompt_tokens = 0, min_prefix_tokens = 0;
  int64_t seed = 0, num_docs = 0;
  int64_t kv_heads = 0, head_dim = 0;
  std::string shard = "0/1";  // "i/n": this file holds documents with index % n == i

  // Empty when equal apart from `shard`; otherwise "<field>: <a> vs <b>" for the first difference.
  std::string DiffIgnoringShard(const KvDatasetHeader& other) const;
  // The same over every field, the shard included (a resumed job must be the same shard).
  std::string Diff(const KvDatasetHeader& other) const;
};

// One labelled prompt for one precision pair.
struct KvPairSample {
  int32_t label = 0;  // index into candidate_steps, or candidate_steps.size() for "never"
  // label_metric rouge_l (the others empty / 0):
  std::vector<double> rouge_l;  // per candidate step: Rouge-L F of that branch vs the reference
  double rouge_l_high = 0;      // Rouge-L F of the all-high output vs the reference
  // label_metric excess_nll: per candidate step, the reference continuation's negative
  // log-likelihood (nats per scored token, tokens 1.. of the reference) when decoding switches to
  // lo at that step, minus the same when it stays at hi; and the all-hi value itself.
  std::vector<double> excess_nll;
  double nll_high = 0;
  // Last layer after prefill at the high precision, float16 bits, [prompt_len, kv_heads, head_dim].
  std::vector<uint16_t> k, v;
};

// One document: its prompt, the reference continuation, and one KvPairSample per adjacent pair
// (in the order of KvDatasetHeader::precisions).
struct KvSample {
  int64_t doc_id = 0;  // index of the document among the usable documents of the source stream
  std::vector<int32_t> prompt_ids, reference_ids;
  std::vector<KvPairSample> pairs;
};

// The switch label of one sample: the index of the earliest candidate whose Rouge-L, rounded to 3
// decimals, is at least the all-high Rouge-L rounded the same way minus `tolerance` (Rouge-L F in
// [0, 1]; 1e-9 absorbs the subtraction's rounding); the candidate count ("never") when none is.
// pmpd-gen-data stores labels at tolerance 0; pmpd-train --label-tolerance recomputes them from the
// stored Rouge-L values, e.g. 0.01 to match pmpd-eval's default calibration epsilon of 1 point.
int SwitchLabel(absl::Span<const double> branch_rouge, double high_rouge, double tolerance = 0);

// The excess_nll label: the index of the earliest candidate whose excess NLL is at most
// `tolerance` nats per token (1e-12 absorbs rounding); the candidate count ("never") when none is.
int CostSwitchLabel(absl::Span<const double> excess_nll, double tolerance);

// "pair_4_3".
std::string PairGroup(int64_t hi, int64_t lo);

// Streams samples into a new file (truncating `path`). Not resumable by itself: pmpd-gen-data
// writes small complete files and joins them (see gen_data_job.h). Finish() writes the
// completed_samples attribute last and closes; a file without it is incomplete.
class KvDatasetWriter {
 public:
  static absl::StatusOr<std::unique_ptr<KvDatasetWriter>> Create(const std::string& path,
                                                                 const KvDatasetHeader& header);
  ~KvDatasetWriter();
  // Checks the sample against the header (pairs, KV sizes, rouge count); errors leave the file as
  // is.
  absl::Status Append(const KvSample& sample);
  absl::Status Finish();
  int64_t samples() const { return samples_; }

 private:
  KvDatasetWriter() = default;
  std::unique_ptr<models::Hdf5File> file_;
  KvDatasetHeader header_;
  int64_t samples_ = 0, prompt_tokens_ = 0, reference_tokens_ = 0;
};

// Per-pair arrays (everything but the KV tensors), sample i at index i.
struct KvPairTable {
  int64_t hi = 0, lo = 0;
  std::vector<int64_t> doc_ids, kv_offsets;
  std::vector<int32_t> prompt_lengths, labels, switch_steps;  // switch step -1 = never
  // As the header's label_metric says: rouge_l and rouge_l_high, or excess_nll and nll_high (the
  // other two empty). Per candidate ones [samples, candidate_steps.size()] row-major.
  std::vector<double> rouge_l, rouge_l_high;
  std::vector<double> excess_nll, nll_high;
};

// Sample i's label from the stored values at `tolerance` (the header's metric: SwitchLabel or
// CostSwitchLabel), over the candidate steps at `step_index` (indices into the file's steps, e.g.
// a subset; the label is an index into step_index, step_index.size() = never).
int RelabelSample(const KvDatasetHeader& header, const KvPairTable& table, int64_t i,
                  absl::Span<const size_t> step_index, double tolerance);

// Reads a complete file. Every read checks shapes against the header; errors name the file and the
// object (a missing group or field, a bad shape, a file without completed_samples).
class KvDatasetReader {
 public:
  static absl::StatusOr<std::unique_ptr<KvDatasetReader>> Open(const std::string& path);
  ~KvDatasetReader();
  const KvDatasetHeader& header() const { return header_; }
  int64_t num_samples() const { return samples_; }
  const std::string& path() const;
  // Document index of every sample (samples/doc_id, checked against every pair group at Open).
  const std::vector<int64_t>& doc_ids() const { return doc_ids_; }
  // Pairs present in the file, high to low: {{4,3},{3,2}}.
  std::vector<std::pair<int64_t, int64_t>> pairs() const;

  // The pair's arrays (a copy of what Open read and checked; a pair the file lacks is an error
  // naming the pairs it has).
  absl::StatusOr<KvPairTable> ReadPair(int64_t hi, int64_t lo) const;
  // K and V of sample i of the pair as float, each [kv_heads, prompt_len, head_dim] row-major (the
  // layout LlamaModel::LastLayerKv gives). Cost: reads the sample's chunks.
  absl::Status ReadKv(const KvPairTable& table, int64_t i, std::vector<float>* k,
                      std::vector<float>* v) const;
  // The whole stored sample (raw float16 KV), for merging.
  absl::StatusOr<KvSample> ReadSample(int64_t i) const;

 private:
  KvDatasetReader() = default;
  absl::StatusOr<KvPairTable> ReadPairFromFile(int64_t hi, int64_t lo) const;
  std::unique_ptr<models::Hdf5File> file_;
  KvDatasetHeader header_;
  int64_t samples_ = 0;
  std::vector<int64_t> doc_ids_, prompt_offsets_, reference_offsets_;
  std::vector<int32_t> prompt_lengths_, reference_lengths_;
  std::vector<KvPairTable> tables_;  // cached per pair for ReadSample
};

// Joins complete files with equal headers (apart from the shard) into `out` (written to a
// temporary file, then renamed): samples sorted by doc_id, header shard set to `out_shard`.
// Fails on a duplicate doc_id. Cost: one read and one write of every byte.
absl::Status JoinKvDatasets(const std::vector<std::string>& inputs, const std::string& out,
                            const std::string& out_shard);

}  // namespace pmpd::dataset
