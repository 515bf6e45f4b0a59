#include "dataset/kv_dataset.h"

#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "kernels/half.h"
#include "models/hdf5_file.h"

namespace pmpd::dataset {
namespace {

using models::H5Type;
using models::Hdf5File;

// Chunk sizes: KV rows are tokens (kv_heads * head_dim values each); 256 tokens per chunk keeps
// one sample's read to a few chunks. Per-sample arrays use 1024 entries per chunk.
constexpr int64_t kKvChunkTokens = 256;
constexpr int64_t kIdChunk = 4096;
constexpr int64_t kSampleChunk = 1024;

#define PMPD_RETURN_IF_ERROR(expr) \
  do {                             \
    absl::Status _st = (expr);     \
    if (!_st.ok()) return _st;     \
  } while (0)

std::string Vec(const std::vector<int64_t>& v) { return absl::StrJoin(v, ","); }

// A label metric's datasets in a pair group and the fields that hold them: the per-candidate values
// and the all-high value (kv_dataset.h). The one place that maps a metric to its storage.
struct MetricFields {
  const char* per_step;
  const char* high;
  std::vector<double> KvPairSample::*sample_values;
  double KvPairSample::*sample_high;
  std::vector<double> KvPairTable::*table_values;
  std::vector<double> KvPairTable::*table_high;
};

const MetricFields& FieldsOf(const std::string& metric) {
  static const MetricFields rouge = {"/rouge_l",
                                     "/rouge_l_high",
                                     &KvPairSample::rouge_l,
                                     &KvPairSample::rouge_l_high,
                                     &KvPairTable::rouge_l,
                                     &KvPairTable::rouge_l_high};
  static const MetricFields nll = {"/excess_nll",
                                   "/nll_high",
                                   &KvPairSample::excess_nll,
                                   &KvPairSample::nll_high,
                                   &KvPairTable::excess_nll,
                                   &KvPairTable::nll_high};
  return metric == kLabelExcessNll ? nll : rouge;
}

// `where`: label_metric "<metric>" is neither ... (for a file or a header).
absl::Status CheckLabelMetric(const std::string& where, const std::string& metric) {
  if (metric == kLabelRougeL || metric == kLabelExcessNll) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(where, ": label_metric \"", metric,
                                                 "\" is neither ", kLabelRougeL, " nor ",
                                                 kLabelExcessNll));
}

bool AllFinite(absl::Span<const double> values, double high) {
  bool finite = std::isfinite(high);
  for (double x : values) finite = finite && std::isfinite(x);
  return finite;
}

absl::Status WriteHeader(Hdf5File& f, const KvDatasetHeader& h) {
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "format", std::string(kKvDatasetFormat)));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "format_version", kKvDatasetVersion));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "tool_version", h.tool_version));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "model_path", h.model_path));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "model_fingerprint", h.model_fingerprint));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "reference", h.reference));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "reference_fingerprint", h.reference_fingerprint));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "source", h.source));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "prompt_format", h.prompt_format));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "label_metric", h.label_metric));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "precisions", h.precisions));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "candidate_steps", h.candidate_steps));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "max_new_tokens", h.max_new_tokens));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "max_prompt_tokens", h.max_prompt_tokens));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "min_prefix_tokens", h.min_prefix_tokens));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "seed", h.seed));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "num_docs", h.num_docs));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "kv_heads", h.kv_heads));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "head_dim", h.head_dim));
  PMPD_RETURN_IF_ERROR(f.SetAttribute("/", "shard", h.shard));
  return absl::OkStatus();
}

absl::StatusOr<KvDatasetHeader> ReadHeader(const Hdf5File& f) {
  auto format = f.GetStringAttribute("/", "format");
  if (!format.ok() || *format != kKvDatasetFormat) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.path(), ": not a pmpd-gen-data file (root attribute format is ",
        format.ok() ? "\"" + *format + "\"" : "missing", ", expected \"", kKvDatasetFormat, "\")"));
  }
  auto version = f.GetIntAttribute("/", "format_version");
  if (!version.ok()) return version.status();
  if (*version != kKvDatasetVersion) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": format_version ", *version,
                                                   ", this build reads ", kKvDatasetVersion));
  }
  KvDatasetHeader h;
  struct S {
    const char* name;
    std::string* out;
  };
  for (S s : {S{"tool_version", &h.tool_version}, S{"model_path", &h.model_path},
              S{"model_fingerprint", &h.model_fingerprint}, S{"reference", &h.reference},
              S{"reference_fingerprint", &h.reference_fingerprint}, S{"source", &h.source},
              S{"shard", &h.shard}}) {
    auto v = f.GetStringAttribute("/", s.name);
    if (!v.ok()) return v.status();
    *s.out = *v;
  }
  // Added after format_version 1 files existed: absent means "text".
  if (auto pf = f.GetStringAttribute("/", "prompt_format"); pf.ok()) h.prompt_format = *pf;
  if (auto m = f.GetStringAttribute("/", "label_metric"); m.ok()) h.label_metric = *m;
  if (auto st = CheckLabelMetric(f.path(), h.label_metric); !st.ok()) return st;
  struct I {
    const char* name;
    int64_t* out;
  };
  for (I s : {I{"max_new_tokens", &h.max_new_tokens}, I{"max_prompt_tokens", &h.max_prompt_tokens},
              I{"min_prefix_tokens", &h.min_prefix_tokens}, I{"seed", &h.seed},
              I{"num_docs", &h.num_docs}, I{"kv_heads", &h.kv_heads}, I{"head_dim", &h.head_dim}}) {
    auto v = f.GetIntAttribute("/", s.name);
    if (!v.ok()) return v.status();
    *s.out = *v;
  }
  auto p = f.GetIntVectorAttribute("/", "precisions");
  if (!p.ok()) return p.status();
  h.precisions = *p;
  auto c = f.GetIntVectorAttribute("/", "candidate_steps");
  if (!c.ok()) return c.status();
  h.candidate_steps = *c;
  if (h.precisions.size() < 2 || h.candidate_steps.empty() || h.kv_heads < 1 || h.head_dim < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": header has ", h.precisions.size(), " precisions, ",
                     h.candidate_steps.size(), " candidate steps, kv_heads ", h.kv_heads,
                     ", head_dim ", h.head_dim, " (need >= 2, >= 1, >= 1, >= 1)"));
  }
  return h;
}

// Reads a 1-D dataset of exactly n entries; errors name the file and the dataset.
template <typename T>
absl::Status ReadVector(const Hdf5File& f, const std::string& name, int64_t n, std::vector<T>* out,
                        int64_t inner = 1) {
  std::vector<int64_t> shape;
  PMPD_RETURN_IF_ERROR(f.ReadAll(name, out, &shape));
  if (shape.empty() || shape[0] != n || static_cast<int64_t>(out->size()) != n * inner) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": dataset ", name, " has shape [",
                                                   Vec(shape), "], expected ", n, " rows of ",
                                                   inner));
  }
  return absl::OkStatus();
}

}  // namespace

int SwitchLabel(absl::Span<const double> branch_rouge, double high_rouge, double tolerance) {
  auto round3 = [](double x) { return std::round(x * 1000.0) / 1000.0; };
  const double bar = round3(high_rouge) - tolerance - (tolerance > 0 ? 1e-9 : 0.0);
  for (size_t i = 0; i < branch_rouge.size(); ++i) {
    if (round3(branch_rouge[i]) >= bar) return static_cast<int>(i);
  }
  return static_cast<int>(branch_rouge.size());
}

int CostSwitchLabel(absl::Span<const double> excess_nll, double tolerance) {
  for (size_t i = 0; i < excess_nll.size(); ++i) {
    if (excess_nll[i] <= tolerance + 1e-12) return static_cast<int>(i);
  }
  return static_cast<int>(excess_nll.size());
}

int RelabelSample(const KvDatasetHeader& header, const KvPairTable& table, int64_t i,
                  absl::Span<const size_t> step_index, double tolerance) {
  const size_t c = header.candidate_steps.size();
  const std::vector<double>& values = table.*FieldsOf(header.label_metric).table_values;
  std::vector<double> picked;
  for (size_t j : step_index) picked.push_back(values[i * c + j]);
  return header.label_metric == kLabelExcessNll
             ? CostSwitchLabel(picked, tolerance)
             : SwitchLabel(picked, table.rouge_l_high[i], tolerance);
}

std::string KvDatasetHeader::DiffIgnoringShard(const KvDatasetHeader& o) const {
  auto str = [](const char* name, const std::string& a, const std::string& b) {
    return a == b ? std::string() : absl::StrCat(name, ": \"", a, "\" vs \"", b, "\"");
  };
  auto num = [](const char* name, int64_t a, int64_t b) {
    return a == b ? std::string() : absl::StrCat(name, ": ", a, " vs ", b);
  };
  for (const std::string& d :
       {str("model_fingerprint", model_fingerprint, o.model_fingerprint),
        str("reference", reference, o.reference),
        str("reference_fingerprint", reference_fingerprint, o.reference_fingerprint),
        str("source", source, o.source), str("prompt_format", prompt_format, o.prompt_format),
        str("label_metric", label_metric, o.label_metric),
        str("precisions", Vec(precisions), Vec(o.precisions)),
        str("candidate_steps", Vec(candidate_steps), Vec(o.candidate_steps)),
        num("max_new_tokens", max_new_tokens, o.max_new_tokens),
        num("max_prompt_tokens", max_prompt_tokens, o.max_prompt_tokens),
        num("min_prefix_tokens", min_prefix_tokens, o.min_prefix_tokens), num("seed", seed, o.seed),
        num("num_docs", num_docs, o.num_docs), num("kv_heads", kv_heads, o.kv_heads),
        num("head_dim", head_dim, o.head_dim), str("tool_version", tool_version, o.tool_version)}) {
    if (!d.empty()) return d;
  }
  return "";
}

std::string KvDatasetHeader::Diff(const KvDatasetHeader& o) const {
  std::string d = DiffIgnoringShard(o);
  if (d.empty() && shard != o.shard) d = absl::StrCat("shard: ", shard, " vs ", o.shard);
  return d;
}

std::string PairGroup(int64_t hi, int64_t lo) { return absl::StrCat("pair_", hi, "_", lo); }

KvDatasetWriter::~KvDatasetWriter() = default;

absl::StatusOr<std::unique_ptr<KvDatasetWriter>> KvDatasetWriter::Create(
    const std::string& path, const KvDatasetHeader& header) {
  if (auto st = CheckLabelMetric(path, header.label_metric); !st.ok()) return st;
  auto f = Hdf5File::Create(path);
  if (!f.ok()) return f.status();
  std::unique_ptr<KvDatasetWriter> w(new KvDatasetWriter());
  w->file_ = std::make_unique<Hdf5File>(std::move(*f));
  w->header_ = header;
  Hdf5File& h5 = *w->file_;
  PMPD_RETURN_IF_ERROR(WriteHeader(h5, header));
  PMPD_RETURN_IF_ERROR(h5.SetAttribute("/", "num_samples", int64_t{0}));
  PMPD_RETURN_IF_ERROR(h5.CreateGroup("samples"));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/doc_id", H5Type::kInt64, {}, kSampleChunk, false));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/prompt_length", H5Type::kInt32, {}, kSampleChunk, false));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/prompt_offset", H5Type::kInt64, {}, kSampleChunk, false));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/prompt_ids", H5Type::kInt32, {}, kIdChunk, true));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/reference_length", H5Type::kInt32, {}, kSampleChunk, false));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/reference_offset", H5Type::kInt64, {}, kSampleChunk, false));
  PMPD_RETURN_IF_ERROR(
      h5.CreateAppendable("samples/reference_ids", H5Type::kInt32, {}, kIdChunk, true));
  const int64_t c = static_cast<int64_t>(header.candidate_steps.size());
  for (size_t p = 0; p + 1 < header.precisions.size(); ++p) {
    const std::string g = PairGroup(header.precisions[p], header.precisions[p + 1]);
    PMPD_RETURN_IF_ERROR(h5.CreateGroup(g));
    PMPD_RETURN_IF_ERROR(h5.SetAttribute(g, "high_precision", header.precisions[p]));
    PMPD_RETURN_IF_ERROR(h5.SetAttribute(g, "low_precision", header.precisions[p + 1]));
    PMPD_RETURN_IF_ERROR(h5.SetAttribute(g, "candidate_steps", header.candidate_steps));
    PMPD_RETURN_IF_ERROR(h5.SetAttribute(g, "num_classes", c + 1));
    for (const char* name : {"/doc_ids", "/kv_offsets"}) {
      PMPD_RETURN_IF_ERROR(h5.CreateAppendable(g + name, H5Type::kInt64, {}, kSampleChunk, false));
    }
    for (const char* name : {"/prompt_lengths", "/labels", "/switch_steps"}) {
      PMPD_RETURN_IF_ERROR(h5.CreateAppendable(g + name, H5Type::kInt32, {}, kSampleChunk, false));
    }
    const MetricFields& f = FieldsOf(header.label_metric);
    PMPD_RETURN_IF_ERROR(
        h5.CreateAppendable(g + f.per_step, H5Type::kFloat64, {c}, kSampleChunk, false));
    PMPD_RETURN_IF_ERROR(
        h5.CreateAppendable(g + f.high, H5Type::kFloat64, {}, kSampleChunk, false));
    for (const char* name : {"/k", "/v"}) {
      PMPD_RETURN_IF_ERROR(h5.CreateAppendable(
          g + name, H5Type::kFloat16, {header.kv_heads, header.head_dim}, kKvChunkTokens, true));
    }
  }
  return w;
}

absl::Status KvDatasetWriter::Append(const KvSample& s) {
  const size_t pairs = header_.precisions.size() - 1;
  const int64_t t = static_cast<int64_t>(s.prompt_ids.size());
  const size_t kv = static_cast<size_t>(t * header_.kv_heads * header_.head_dim);
  const size_t c = header_.candidate_steps.size();
  if (s.pairs.size() != pairs || t == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        file_->path(), ": sample of document ", s.doc_id, " has ", s.pairs.size(), " pairs and ", t,
        " prompt tokens; expected ", pairs, " pairs and at least one token"));
  }
  const MetricFields& f = FieldsOf(header_.label_metric);
  for (const KvPairSample& p : s.pairs) {
    const std::vector<double>& values = p.*f.sample_values;
    if (p.k.size() != kv || p.v.size() != kv || values.size() != c || p.label < 0 ||
        p.label > static_cast<int32_t>(c)) {
      return absl::InvalidArgumentError(absl::StrCat(file_->path(), ": sample of document ",
                                                     s.doc_id, ": K/V/", header_.label_metric,
                                                     "/label sizes do not match the header"));
    }
    if (!AllFinite(values, p.*f.sample_high)) {
      return absl::InvalidArgumentError(absl::StrCat(file_->path(), ": sample of document ",
                                                     s.doc_id, ": a NaN or infinite ",
                                                     header_.label_metric, " value"));
    }
  }
  Hdf5File& h5 = *file_;
  const int32_t plen = static_cast<int32_t>(t), rlen = static_cast<int32_t>(s.reference_ids.size());
  PMPD_RETURN_IF_ERROR(h5.Append("samples/doc_id", &s.doc_id, 1));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/prompt_length", &plen, 1));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/prompt_offset", &prompt_tokens_, 1));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/prompt_ids", s.prompt_ids.data(), t));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/reference_length", &rlen, 1));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/reference_offset", &reference_tokens_, 1));
  PMPD_RETURN_IF_ERROR(h5.Append("samples/reference_ids", s.reference_ids.data(), rlen));
  for (size_t p = 0; p < pairs; ++p) {
    const KvPairSample& ps = s.pairs[p];
    const std::string g = PairGroup(header_.precisions[p], header_.precisions[p + 1]);
    const int32_t step = ps.label < static_cast<int32_t>(c)
                             ? static_cast<int32_t>(header_.candidate_steps[ps.label])
                             : -1;
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/doc_ids", &s.doc_id, 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/kv_offsets", &prompt_tokens_, 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/prompt_lengths", &plen, 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/labels", &ps.label, 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/switch_steps", &step, 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + f.per_step, (ps.*f.sample_values).data(), 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + f.high, &(ps.*f.sample_high), 1));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/k", ps.k.data(), t));
    PMPD_RETURN_IF_ERROR(h5.Append(g + "/v", ps.v.data(), t));
  }
  prompt_tokens_ += t;
  reference_tokens_ += rlen;
  ++samples_;
  return h5.SetAttribute("/", "num_samples", samples_);
}

absl::Status KvDatasetWriter::Finish() {
  PMPD_RETURN_IF_ERROR(
      file_->SetAttribute("/", "completed_samples", samples_));  // last: marks the file complete
  return file_->Close();
}

KvDatasetReader::~KvDatasetReader() = default;
const std::string& KvDatasetReader::path() const { return file_->path(); }

absl::StatusOr<std::unique_ptr<KvDatasetReader>> KvDatasetReader::Open(const std::string& path) {
  auto f = Hdf5File::Open(path);
  if (!f.ok()) return f.status();
  std::unique_ptr<KvDatasetReader> r(new KvDatasetReader());
  r->file_ = std::make_unique<Hdf5File>(std::move(*f));
  const Hdf5File& h5 = *r->file_;
  auto header = ReadHeader(h5);
  if (!header.ok()) return header.status();
  r->header_ = *header;
  auto completed = h5.GetIntAttribute("/", "completed_samples");
  if (!completed.ok()) {
    return absl::DataLossError(
        absl::StrCat(path,
                     ": incomplete file (no completed_samples attribute: the writer did "
                     "not finish; rerun pmpd-gen-data with the same flags to complete it)"));
  }
  r->samples_ = *completed;
  const int64_t n = r->samples_;
  PMPD_RETURN_IF_ERROR(ReadVector(h5, "samples/doc_id", n, &r->doc_ids_));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, "samples/prompt_length", n, &r->prompt_lengths_));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, "samples/prompt_offset", n, &r->prompt_offsets_));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, "samples/reference_length", n, &r->reference_lengths_));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, "samples/reference_offset", n, &r->reference_offsets_));
  // Every sample's token run lies inside its token array (a corrupt length would otherwise become a
  // huge or negative allocation when the sample is read).
  for (const auto& [ids, lengths, offsets, min_length] :
       {std::make_tuple("samples/prompt_ids", &r->prompt_lengths_, &r->prompt_offsets_, 1),
        std::make_tuple("samples/reference_ids", &r->reference_lengths_, &r->reference_offsets_,
                        0)}) {
    auto shape = h5.Shape(ids);
    if (!shape.ok()) return shape.status();
    const int64_t rows = shape->empty() ? 0 : (*shape)[0];
    for (int64_t i = 0; i < n; ++i) {
      const int64_t len = (*lengths)[i], off = (*offsets)[i];
      if (len < min_length || off < 0 || off > rows || len > rows - off) {
        return absl::DataLossError(absl::StrCat(path, ": sample ", i, " has ", ids, " run [", off,
                                                ", ", off, " + ", len, ") outside the ", rows,
                                                " stored tokens"));
      }
    }
  }
  for (const auto& [hi, lo] : r->pairs()) {
    auto t = r->ReadPairFromFile(hi, lo);
    if (!t.ok()) return t.status();
    for (int64_t i = 0; i < n; ++i) {
      if (t->doc_ids[i] != r->doc_ids_[i] || t->prompt_lengths[i] != r->prompt_lengths_[i] ||
          t->kv_offsets[i] != r->prompt_offsets_[i]) {
        return absl::DataLossError(
            absl::StrCat(path, ": ", PairGroup(hi, lo), " sample ", i,
                         " disagrees with samples/ on doc_id, prompt length or offset"));
      }
    }
    r->tables_.push_back(std::move(*t));
  }
  return r;
}

std::vector<std::pair<int64_t, int64_t>> KvDatasetReader::pairs() const {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (size_t p = 0; p + 1 < header_.precisions.size(); ++p)
    out.push_back({header_.precisions[p], header_.precisions[p + 1]});
  return out;
}

absl::StatusOr<KvPairTable> KvDatasetReader::ReadPair(int64_t hi, int64_t lo) const {
  for (const KvPairTable& t : tables_) {
    if (t.hi == hi && t.lo == lo) return t;  // read and checked at Open
  }
  return ReadPairFromFile(hi, lo);
}

absl::StatusOr<KvPairTable> KvDatasetReader::ReadPairFromFile(int64_t hi, int64_t lo) const {
  const std::string g = PairGroup(hi, lo);
  const Hdf5File& h5 = *file_;
  if (!h5.Exists(g)) {
    std::vector<std::string> have;
    for (const auto& [a, b] : pairs()) have.push_back(PairGroup(a, b));
    return absl::NotFoundError(absl::StrCat(path(), ": no group ", g, " (precision pair ", hi,
                                            " -> ", lo, "); the file has ",
                                            absl::StrJoin(have, ", ")));
  }
  const int64_t n = samples_;
  const int64_t c = static_cast<int64_t>(header_.candidate_steps.size());
  KvPairTable t;
  t.hi = hi;
  t.lo = lo;
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + "/doc_ids", n, &t.doc_ids));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + "/kv_offsets", n, &t.kv_offsets));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + "/prompt_lengths", n, &t.prompt_lengths));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + "/labels", n, &t.labels));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + "/switch_steps", n, &t.switch_steps));
  const MetricFields& f = FieldsOf(header_.label_metric);
  std::vector<double>& values = t.*f.table_values;
  std::vector<double>& high = t.*f.table_high;
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + f.per_step, n, &values, c));
  PMPD_RETURN_IF_ERROR(ReadVector(h5, g + f.high, n, &high));
  for (int64_t i = 0; i < n; ++i) {
    if (!AllFinite(absl::MakeConstSpan(values).subspan(i * c, c), high[i])) {
      return absl::DataLossError(absl::StrCat(path(), ": ", g, "/", header_.label_metric,
                                              " of sample ", i, " is NaN or infinite"));
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (t.labels[i] < 0 || t.labels[i] > c) {
      return absl::DataLossError(absl::StrCat(path(), ": ", g, "/labels[", i, "] = ", t.labels[i],
                                              " outside [0, ", c, "]"));
    }
  }
  for (const char* name : {"/k", "/v"}) {
    auto shape = h5.Shape(g + name);
    if (!shape.ok()) return shape.status();
    const int64_t total = n == 0 ? 0 : t.kv_offsets[n - 1] + t.prompt_lengths[n - 1];
    if (shape->size() != 3 || (*shape)[0] != total || (*shape)[1] != header_.kv_heads ||
        (*shape)[2] != header_.head_dim) {
      return absl::InvalidArgumentError(absl::StrCat(path(), ": dataset ", g, name, " has shape [",
                                                     Vec(*shape), "], expected [", total, ",",
                                                     header_.kv_heads, ",", header_.head_dim, "]"));
    }
  }
  return t;
}

absl::Status KvDatasetReader::ReadKv(const KvPairTable& table, int64_t i, std::vector<float>* k,
                                     std::vector<float>* v) const {
  if (i < 0 || i >= samples_) {
    return absl::OutOfRangeError(
        absl::StrCat(path(), ": sample ", i, " outside [0, ", samples_, ")"));
  }
  const int64_t t = table.prompt_lengths[i], h = header_.kv_heads, d = header_.head_dim;
  std::vector<uint16_t> raw(static_cast<size_t>(t * h * d));
  const std::string g = PairGroup(table.hi, table.lo);
  for (auto [name, out] : {std::pair<const char*, std::vector<float>*>{"/k", k}, {"/v", v}}) {
    PMPD_RETURN_IF_ERROR(
        file_->ReadRows(g + name, H5Type::kFloat16, table.kv_offsets[i], t, raw.data()));
    // Stored token-major [T, H, D] (appendable along T); the model's layout is [H, T, D].
    out->resize(raw.size());
    for (int64_t tok = 0; tok < t; ++tok) {
      for (int64_t head = 0; head < h; ++head) {
        const uint16_t* src = raw.data() + (tok * h + head) * d;
        float* dst = out->data() + (head * t + tok) * d;
        for (int64_t j = 0; j < d; ++j) dst[j] = kernels::F16ToF32(src[j]);
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<KvSample> KvDatasetReader::ReadSample(int64_t i) const {
  if (i < 0 || i >= samples_) {
    return absl::OutOfRangeError(
        absl::StrCat(path(), ": sample ", i, " outside [0, ", samples_, ")"));
  }
  KvSample s;
  s.doc_id = doc_ids_[i];
  s.prompt_ids.resize(prompt_lengths_[i]);
  s.reference_ids.resize(reference_lengths_[i]);
  PMPD_RETURN_IF_ERROR(file_->ReadRows("samples/prompt_ids", H5Type::kInt32, prompt_offsets_[i],
                                       prompt_lengths_[i], s.prompt_ids.data()));
  PMPD_RETURN_IF_ERROR(file_->ReadRows("samples/reference_ids", H5Type::kInt32,
                                       reference_offsets_[i], reference_lengths_[i],
                                       s.reference_ids.data()));
  const size_t c = header_.candidate_steps.size();
  const int64_t t = prompt_lengths_[i];
  for (const KvPairTable& table : tables_) {
    KvPairSample p;
    p.label = table.labels[i];
    const MetricFields& f = FieldsOf(header_.label_metric);
    const std::vector<double>& values = table.*f.table_values;
    (p.*f.sample_values).assign(values.begin() + i * c, values.begin() + (i + 1) * c);
    p.*f.sample_high = (table.*f.table_high)[i];
    const std::string g = PairGroup(table.hi, table.lo);
    p.k.resize(static_cast<size_t>(t * header_.kv_heads * header_.head_dim));
    p.v.resize(p.k.size());
    PMPD_RETURN_IF_ERROR(
        file_->ReadRows(g + "/k", H5Type::kFloat16, table.kv_offsets[i], t, p.k.data()));
    PMPD_RETURN_IF_ERROR(
        file_->ReadRows(g + "/v", H5Type::kFloat16, table.kv_offsets[i], t, p.v.data()));
    s.pairs.push_back(std::move(p));
  }
  return s;
}

absl::Status JoinKvDatasets(const std::vector<std::string>& inputs, const std::string& out,
                            const std::string& out_shard) {
  if (inputs.empty()) return absl::InvalidArgumentError("join: no input files");
  std::vector<std::unique_ptr<KvDatasetReader>> readers;
  for (const std::string& in : inputs) {
    auto r = KvDatasetReader::Open(in);
    if (!r.ok()) return r.status();
    if (!readers.empty()) {
      const std::string diff = readers[0]->header().DiffIgnoringShard((*r)->header());
      if (!diff.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            in, ": made with another configuration than ", inputs[0], " (", diff, ")"));
      }
    }
    readers.push_back(std::move(*r));
  }
  // (doc_id, reader, index), sorted by doc_id: the order an unsharded run writes.
  std::vector<std::tuple<int64_t, size_t, int64_t>> order;
  for (size_t r = 0; r < readers.size(); ++r) {
    for (int64_t i = 0; i < readers[r]->num_samples(); ++i) {
      order.emplace_back(readers[r]->doc_ids()[i], r, i);
    }
  }
  std::sort(order.begin(), order.end());
  for (size_t i = 1; i < order.size(); ++i) {
    if (std::get<0>(order[i]) == std::get<0>(order[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("document ", std::get<0>(order[i]), " appears in both ",
                       inputs[std::get<1>(order[i - 1])], " and ", inputs[std::get<1>(order[i])]));
    }
  }
  KvDatasetHeader header = readers[0]->header();
  header.shard = out_shard;
  auto file = base::AtomicFile::Create(out);
  if (!file.ok()) return file.status();
  auto w = KvDatasetWriter::Create(file->temp_path(), header);
  if (!w.ok()) return w.status();
  for (const auto& [doc, r, i] : order) {
    auto s = readers[r]->ReadSample(i);
    if (!s.ok()) return s.status();
    PMPD_RETURN_IF_ERROR((*w)->Append(*s));
  }
  PMPD_RETURN_IF_ERROR((*w)->Finish());
  return file->Commit();
}

}  // namespace pmpd::dataset
