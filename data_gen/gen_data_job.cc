#include "data_gen/gen_data_job.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/atomic_file.h"
#include "data_gen/switch_labeler.h"
#include "dataset/kv_dataset.h"
#include "inference/llama_model.h"
#include "inference/load_engine.h"
#include "kernels/half.h"
#include "models/chat_template.h"
#include "models/file_util.h"
#include "models/model_fingerprint.h"
#include "models/splitmix64.h"
#include "models/text_stream.h"
#include "models/tokenizer.h"
#include "models/version.h"
#include "scheduler_runtime/scheduled_generation.h"

namespace pmpd::data_gen {
namespace {

using dataset::KvDatasetHeader;
using dataset::KvDatasetReader;
using dataset::KvDatasetWriter;
using dataset::KvPairSample;
using dataset::KvSample;

// Prompt of document `doc`: the first `cap` tokens (BOS included), cut at a length drawn uniformly
// from [max(1, min(min_prefix, L/2)), L] by an RNG seeded from (seed, doc) only.
std::vector<int32_t> CutPrompt(const std::vector<int>& ids, int cap, int min_prefix, uint64_t seed,
                               int64_t doc) {
  const int L = std::min<int>(static_cast<int>(ids.size()), cap);
  const int lo = std::max(1, std::min(min_prefix, L / 2));
  const uint64_t r =
      models::SplitMix64Hash(models::SplitMix64Hash(seed) ^ static_cast<uint64_t>(doc));
  const int len = lo + static_cast<int>(r % static_cast<uint64_t>(L - lo + 1));
  return std::vector<int32_t>(ids.begin(), ids.begin() + len);
}

// The chat form of document `doc`'s prompt: the document's tokens cut as CutPrompt does, within the
// cap minus the template's own tokens, as the user message "<instruction>\n\n<prefix>". Re-encoding
// the decoded prefix may merge differently at the cut, so the prefix shrinks until the whole fits.
absl::StatusOr<std::vector<int32_t>> ChatPrompt(const models::Tokenizer& tok,
                                                const models::ChatTemplate& chat,
                                                const std::string& instruction,
                                                const std::string& text, int cap, int min_prefix,
                                                uint64_t seed, int64_t doc) {
  auto message = [&](const std::string& prefix) {
    return std::vector<models::ChatMessage>{{"user", instruction + "\n\n" + prefix}};
  };
  auto empty = chat.Encode(tok, message(""), /*add_generation_prompt=*/true);
  if (!empty.ok()) return empty.status();
  const int room = cap - static_cast<int>(empty->size());
  if (room < 1) {
    return absl::InvalidArgumentError(absl::StrCat("the chat template and --chat-instruction take ",
                                                   empty->size(),
                                                   " tokens, more than the prompt cap of ", cap));
  }
  std::vector<int32_t> cut = CutPrompt(tok.Encode(text, false), room, min_prefix, seed, doc);
  while (true) {
    auto ids =
        chat.Encode(tok, message(tok.Decode(std::vector<int>(cut.begin(), cut.end()))), true);
    if (!ids.ok()) return ids.status();
    if (static_cast<int>(ids->size()) <= cap || cut.size() <= 1) {
      return std::vector<int32_t>(ids->begin(), ids->end());
    }
    cut.resize(cut.size() - std::min<size_t>(cut.size() - 1, ids->size() - cap));
  }
}

// [H, T, D] float -> [T, H, D] float16 bits (the stored layout).
std::vector<uint16_t> ToTokenMajorF16(const std::vector<float>& hdt, int h, int t, int d) {
  std::vector<uint16_t> out(hdt.size());
  for (int head = 0; head < h; ++head) {
    for (int tok = 0; tok < t; ++tok) {
      const float* src = hdt.data() + (static_cast<size_t>(head) * t + tok) * d;
      uint16_t* dst = out.data() + (static_cast<size_t>(tok) * h + head) * d;
      for (int j = 0; j < d; ++j) dst[j] = kernels::F32ToF16(src[j]);
    }
  }
  return out;
}

// The names in `dir`, or none when it does not exist (nothing to resume or to clean up).
std::vector<std::string> ListDir(const std::string& dir) {
  auto names = models::ListDirectory(dir);
  return names.ok() ? *names : std::vector<std::string>{};
}

// Writes `samples` (none: an empty dataset) as one complete file at `path` (base::AtomicFile).
absl::Status WriteDatasetFile(const std::string& path, const KvDatasetHeader& header,
                              const std::vector<KvSample>& samples) {
  auto file = base::AtomicFile::Create(path);
  if (!file.ok()) return file.status();
  auto w = KvDatasetWriter::Create(file->temp_path(), header);
  if (!w.ok()) return w.status();
  for (const KvSample& s : samples) {
    if (auto st = (*w)->Append(s); !st.ok()) return st;
  }
  if (auto st = (*w)->Finish(); !st.ok()) return st;
  return file->Commit();
}

// Writes `samples` as one complete segment file in `dir`.
absl::Status WriteSegment(const std::string& dir, const KvDatasetHeader& header,
                          const std::vector<KvSample>& samples) {
  const std::string name =
      absl::StrFormat("seg_%09d_%09d.h5", samples.front().doc_id, samples.back().doc_id);
  return WriteDatasetFile(models::JoinPath(dir, name), header, samples);
}

absl::Status CheckOptions(const GenDataOptions& o) {
  auto bad = [](const std::string& m) { return absl::InvalidArgumentError(m); };
  if (o.model_dir.empty() || o.source.empty() || o.out.empty())
    return bad("--model, --c4 and --out are required");
  if (auto st = scheduler::CheckPrecisionLadder(o.precisions, 2); !st.ok()) return st;
  if (o.stop_after < 0) return bad("--stop-after must be >= 0");
  if (o.label_metric != dataset::kLabelRougeL && o.label_metric != dataset::kLabelExcessNll) {
    return bad(absl::StrCat("--label-metric ", o.label_metric, ": must be ", dataset::kLabelRougeL,
                            " or ", dataset::kLabelExcessNll));
  }
  if (o.num_docs < 1 || o.max_new_tokens < 1 || o.max_prompt_tokens < 1 ||
      o.min_prefix_tokens < 1 || o.flush_every < 1) {
    return bad(
        "--num-docs, --max-new-tokens, --max-prompt-tokens, --min-prefix-tokens and --flush-every "
        "must be >= 1");
  }
  if (o.batch < 0) return bad(absl::StrCat("--batch ", o.batch, ": must be >= 0 (0: automatic)"));
  if (o.shard_count < 1 || o.shard_index < 0 || o.shard_index >= o.shard_count) {
    return bad(absl::StrCat("--shard ", o.shard_index, "/", o.shard_count, ": need 0 <= i < n"));
  }
  for (size_t i = 0; i < o.candidate_steps.size(); ++i) {
    if (o.candidate_steps[i] < 0 || o.candidate_steps[i] >= o.max_new_tokens ||
        (i > 0 && o.candidate_steps[i] <= o.candidate_steps[i - 1])) {
      return bad(absl::StrCat(
          "--candidate-steps ", absl::StrJoin(o.candidate_steps, ","),
          ": must be increasing and within [0, --max-new-tokens = ", o.max_new_tokens, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<int> DefaultCandidateSteps(int n) {
  std::vector<int> steps = {0, n / 3, 2 * n / 3};
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  return steps;
}

absl::StatusOr<GenDataReport> SummarizeGenData(const std::string& path) {
  auto r = KvDatasetReader::Open(path);
  if (!r.ok()) return r.status();
  GenDataReport rep;
  rep.samples = (*r)->num_samples();
  rep.candidate_steps = (*r)->header().candidate_steps;
  rep.label_metric = (*r)->header().label_metric;
  for (const auto& [hi, lo] : (*r)->pairs()) {
    auto t = (*r)->ReadPair(hi, lo);
    if (!t.ok()) return t.status();
    std::vector<int64_t> counts(rep.candidate_steps.size() + 1, 0);
    for (int32_t l : t->labels) ++counts[l];
    rep.class_counts.push_back(counts);
    if (t->excess_nll.empty()) continue;
    const size_t c = rep.candidate_steps.size();
    std::vector<double> medians;
    for (size_t j = 0; j < c; ++j) {
      std::vector<double> col;
      for (size_t i = 0; i < static_cast<size_t>(rep.samples); ++i)
        col.push_back(t->excess_nll[i * c + j]);
      std::sort(col.begin(), col.end());
      medians.push_back(col.empty() ? 0.0 : col[col.size() / 2]);
    }
    rep.median_excess_nll.push_back(medians);
  }
  return rep;
}

namespace {

// Removes what the job wrote into OUT.partial (its segments and their temporaries), then the
// directory if nothing else is in it: a file someone else put there stays.
void RemoveOwnPartial(const std::string& partial) {
  for (const std::string& n : ListDir(partial)) {
    if ((absl::StartsWith(n, "seg_") && absl::EndsWith(n, ".h5")) || base::IsAtomicFileTemporary(n))
      ::unlink(models::JoinPath(partial, n).c_str());
  }
  ::rmdir(partial.c_str());
}

absl::StatusOr<GenDataReport> RunGenDataOnce(
    const GenDataOptions& options, const std::function<void(const GenDataProgress&)>& progress);

}  // namespace

absl::StatusOr<GenDataReport> RunGenData(
    const GenDataOptions& options, const std::function<void(const GenDataProgress&)>& progress) {
  auto r = RunGenDataOnce(options, progress);
  // An error before any segment was written leaves no empty OUT.partial behind (rmdir removes only
  // an empty directory).
  if (!r.ok() && !options.out.empty()) ::rmdir((options.out + ".partial").c_str());
  return r;
}

namespace {

absl::StatusOr<GenDataReport> RunGenDataOnce(
    const GenDataOptions& options, const std::function<void(const GenDataProgress&)>& progress) {
  if (auto st = CheckOptions(options); !st.ok()) return st;
  GenDataOptions o = options;
  if (o.candidate_steps.empty()) o.candidate_steps = DefaultCandidateSteps(o.max_new_tokens);

  // The engine (LoadEngine); on the CPU, labelling can batch the branches.
  std::unique_ptr<inference::Engine> engine, ref_engine;
  inference::LoadEngineOptions load_options;
  load_options.verbose = false;
  auto device = inference::ResolveDevice(o.device);
  if (!device.ok()) return device.status();
  // Both engines hold prompt + new tokens (CUDA caches are preallocated at this size per slot).
  load_options.cuda_max_context = o.max_prompt_tokens + o.max_new_tokens;
  load_options.cuda_kv_cache_fp16 = o.kv_cache_fp16;
  {
    // Slots only where they are used: batched branches with decoded (rouge_l) branches.
    const bool slots_used = o.batched_branches && o.label_metric == dataset::kLabelRougeL;
    inference::LoadEngineOptions main_options = load_options;
    main_options.max_batch = !slots_used                           ? 1
                             : o.batch > 0                         ? o.batch
                             : *device == inference::Device::kCuda ? 8
                                                                   : 1;
    main_options.cuda_rows_as_single = !o.tensor_core_rows;  // the engine checks max_batch
    auto e = inference::LoadEngine(o.model_dir, *device, main_options);
    if (!e.ok()) return e.status();
    engine = std::move(*e);
  }
  inference::Engine& m = *engine;
  auto* cpu_model = dynamic_cast<inference::LlamaModel*>(engine.get());
  const int ref_precision = o.reference_precision > 0 ? o.reference_precision : m.max_precision();
  {
    std::vector<int> needed = o.precisions;
    if (o.reference_model.empty()) needed.push_back(ref_precision);
    if (auto st = scheduler::CheckPrecisionRange(m.min_precision(), m.max_precision(), needed,
                                                 o.model_dir);
        !st.ok()) {
      return st;
    }
  }
  auto tok = models::Tokenizer::Load(o.model_dir);
  if (!tok.ok()) return tok.status();
  if (!o.reference_model.empty()) {
    auto e = inference::LoadEngine(o.reference_model, *device, load_options);
    if (!e.ok()) return e.status();
    ref_engine = std::move(*e);
    if (ref_engine->config().vocab_size != m.config().vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("--reference-model ", o.reference_model,
                                                     " has a vocabulary of ",
                                                     ref_engine->config().vocab_size, " tokens, ",
                                                     o.model_dir, " has ", m.config().vocab_size));
    }
  }
  const bool on_slots =
      o.batched_branches && m.max_batch() > 1 && o.label_metric == dataset::kLabelRougeL;
  const bool batched = o.batched_branches && cpu_model != nullptr;
  const int cap = std::min(o.max_prompt_tokens, m.max_context() - o.max_new_tokens);
  if (cap < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--max-new-tokens ", o.max_new_tokens,
                                                   " leaves no room for a prompt in ", o.model_dir,
                                                   "'s context of ", m.max_context(), " tokens"));
  }

  std::optional<models::ChatTemplate> chat;
  if (!o.chat_instruction.empty()) {
    auto t = models::ChatTemplate::ForModel(o.chat_template, **tok);
    if (!t.ok()) return t.status();
    chat = *t;
  }

  KvDatasetHeader header;
  header.tool_version = kPmpdVersion;
  if (chat) header.prompt_format = absl::StrCat("chat:", chat->name(), ":", o.chat_instruction);
  header.label_metric = o.label_metric;
  header.model_path = o.model_dir;
  auto fp = models::FingerprintModelDir(o.model_dir);
  if (!fp.ok()) return fp.status();
  header.model_fingerprint = *fp;
  if (ref_engine) {
    header.reference = absl::StrCat("model:", o.reference_model);
    auto rfp = models::FingerprintModelDir(o.reference_model);
    if (!rfp.ok()) return rfp.status();
    header.reference_fingerprint = *rfp;
  } else {
    header.reference = absl::StrCat("precision:", ref_precision);
    header.reference_fingerprint = *fp;
  }
  header.source = o.source;
  header.precisions.assign(o.precisions.begin(), o.precisions.end());
  header.candidate_steps.assign(o.candidate_steps.begin(), o.candidate_steps.end());
  header.max_new_tokens = o.max_new_tokens;
  header.max_prompt_tokens = cap;
  header.min_prefix_tokens = o.min_prefix_tokens;
  header.seed = static_cast<int64_t>(o.seed);
  header.num_docs = o.num_docs;
  header.kv_heads = m.config().num_key_value_heads;
  header.head_dim = m.config().head_dim;
  header.shard = absl::StrCat(o.shard_index, "/", o.shard_count);

  const std::string partial = o.out + ".partial";
  auto mismatch = [&](const std::string& file, const std::string& diff) {
    return absl::FailedPreconditionError(absl::StrCat(
        file, " was made with another configuration (", diff,
        "); refusing to append. Use another --out, or delete ", file, " to start over"));
  };
  // A finished file: done, if it is ours.
  if (models::FileExists(o.out)) {
    auto r = KvDatasetReader::Open(o.out);
    if (!r.ok()) return r.status();
    if (const std::string diff = header.Diff((*r)->header()); !diff.empty())
      return mismatch(o.out, diff);
    RemoveOwnPartial(partial);
    auto rep = SummarizeGenData(o.out);
    if (rep.ok()) {
      rep->already_complete = true;
      rep->resumed = rep->samples;
    }
    return rep;
  }

  // Segments of an interrupted run (and the final file's temporary, if it was killed writing it).
  if (auto st = base::RemoveStaleTemporaries(o.out); !st.ok()) return st;
  if (auto st = models::MakeDirs(partial); !st.ok()) return st;
  std::set<int64_t> done_docs;
  std::vector<std::string> segments;
  for (const std::string& n : ListDir(partial)) {
    const std::string path = models::JoinPath(partial, n);
    if (base::IsAtomicFileTemporary(n)) {  // a segment being written when the job died
      ::unlink(path.c_str());
      continue;
    }
    if (!absl::StartsWith(n, "seg_") || !absl::EndsWith(n, ".h5")) continue;
    auto r = KvDatasetReader::Open(path);
    if (!r.ok()) return r.status();
    if (const std::string diff = header.Diff((*r)->header()); !diff.empty())
      return mismatch(path, diff);
    done_docs.insert((*r)->doc_ids().begin(), (*r)->doc_ids().end());
    segments.push_back(path);
  }

  GenDataReport report;
  report.resumed = static_cast<int64_t>(done_docs.size());
  report.batch = on_slots ? m.max_batch() : 1;
  report.engine_device_bytes = m.device_bytes() + (ref_engine ? ref_engine->device_bytes() : 0);
  GenDataProgress prog;
  prog.total = (o.num_docs - o.shard_index + o.shard_count - 1) / o.shard_count;
  prog.done = prog.resumed = report.resumed;
  if (progress) progress(prog);

  auto stream = models::TextStream::Open(o.source);
  if (!stream.ok()) return stream.status();
  std::vector<KvSample> pending;
  const auto start = std::chrono::steady_clock::now();
  const int h = static_cast<int>(header.kv_heads), d = static_cast<int>(header.head_dim);
  const auto store_pair = [&](KvSample& s, const PairLabel& label) {
    KvPairSample ps;
    ps.label = label.label;
    ps.rouge_l = label.rouge_l;
    ps.rouge_l_high = label.rouge_l_high;
    ps.excess_nll = label.excess_nll;
    ps.nll_high = label.nll_high;
    const int T = static_cast<int>(s.prompt_ids.size());
    ps.k = ToTokenMajorF16(label.k, h, T, d);
    ps.v = ToTokenMajorF16(label.v, h, T, d);
    s.pairs.push_back(std::move(ps));
  };
  // A labelled sample: into the next segment, progress.
  const auto finish_sample = [&](KvSample s) -> absl::Status {
    pending.push_back(std::move(s));
    ++report.computed;
    if (static_cast<int>(pending.size()) >= o.flush_every) {
      if (auto st = WriteSegment(partial, header, pending); !st.ok()) return st;
      pending.clear();
    }
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    prog.done = report.resumed + report.computed;
    prog.samples_per_s = secs > 0 ? report.computed / secs : 0;
    prog.eta_s = prog.samples_per_s > 0 ? (prog.total - prog.done) / prog.samples_per_s : 0;
    if (progress) progress(prog);
    return absl::OkStatus();
  };
  // On slots: the prompts waiting to be labelled together (up to flush_every), with where each
  // document came from for error messages.
  std::vector<KvSample> window;
  std::vector<std::string> window_where;
  // The ladder's labelling options (each pair's: so.Pair(p)), on slots and one prompt at a time.
  SlotLabelOptions so;
  so.precisions = o.precisions;
  so.candidate_steps = o.candidate_steps;
  so.max_new_tokens = o.max_new_tokens;
  so.reference_precision = ref_precision;
  const auto label_window = [&]() -> absl::Status {
    std::vector<SlotLabelRequest> requests(window.size());
    for (size_t i = 0; i < window.size(); ++i) {
      requests[i].prompt.assign(window[i].prompt_ids.begin(), window[i].prompt_ids.end());
      if (ref_engine) {
        auto ref = scheduler::GreedyGeneration(*ref_engine, requests[i].prompt, o.max_new_tokens);
        if (!ref.ok()) {
          return absl::Status(ref.status().code(),
                              absl::StrCat("document ", window[i].doc_id, " (", window_where[i],
                                           "): ", ref.status().message()));
        }
        requests[i].reference_ids = std::move(ref->new_ids);
        requests[i].has_reference = true;
      }
    }
    auto labels = LabelOnSlots(m, **tok, requests, so);
    if (!labels.ok()) {
      return absl::Status(
          labels.status().code(),
          absl::StrCat("documents ", window.front().doc_id, "..", window.back().doc_id, " (from ",
                       window_where.front(), "): ", labels.status().message()));
    }
    for (size_t i = 0; i < window.size(); ++i) {
      KvSample& s = window[i];
      const SlotLabelResult& r = (*labels)[i];
      s.reference_ids.assign(r.reference_ids.begin(), r.reference_ids.end());
      for (const PairLabel& label : r.pairs) store_pair(s, label);
      if (auto st = finish_sample(std::move(s)); !st.ok()) return st;
    }
    window.clear();
    window_where.clear();
    return absl::OkStatus();
  };
  std::string text;
  int64_t doc = 0;
  for (; doc < o.num_docs; ++doc) {
    if (o.stop_after > 0 && report.computed + static_cast<int64_t>(window.size()) >= o.stop_after) {
      report.stopped_early = true;
      break;
    }
    auto more = (*stream)->Next(&text);
    if (!more.ok()) return more.status();
    if (!*more) break;
    if (doc % o.shard_count != o.shard_index || done_docs.count(doc)) continue;
    KvSample s;
    s.doc_id = doc;
    if (chat) {
      auto ids =
          ChatPrompt(**tok, *chat, o.chat_instruction, text, cap, o.min_prefix_tokens, o.seed, doc);
      if (!ids.ok()) return ids.status();
      s.prompt_ids = std::move(*ids);
    } else {
      s.prompt_ids = CutPrompt((*tok)->Encode(text, true), cap, o.min_prefix_tokens, o.seed, doc);
    }
    if (on_slots) {
      window.push_back(std::move(s));
      window_where.push_back((*stream)->location());
      if (static_cast<int>(window.size()) >= o.flush_every) {
        if (auto st = label_window(); !st.ok()) return st;
      }
      continue;
    }
    const std::vector<int> prompt(s.prompt_ids.begin(), s.prompt_ids.end());
    auto ref = ref_engine ? scheduler::GreedyGeneration(*ref_engine, prompt, o.max_new_tokens)
                          : scheduler::GreedyGeneration(m, prompt, o.max_new_tokens, ref_precision);
    if (!ref.ok()) return ref.status();
    s.reference_ids.assign(ref->new_ids.begin(), ref->new_ids.end());
    const std::string ref_text = DecodeWithoutEos(**tok, ref->new_ids);
    for (size_t p = 0; p + 1 < o.precisions.size(); ++p) {
      const PairLabelOptions lo = so.Pair(static_cast<int>(p));
      auto label = o.label_metric == dataset::kLabelExcessNll
                       ? LabelPairTeacherForced(m, prompt, ref->new_ids, lo)
                   : batched ? LabelPairBatched(*cpu_model, **tok, prompt, ref_text, lo)
                             : LabelPairSequential(m, **tok, prompt, ref_text, lo);
      if (!label.ok()) {
        return absl::Status(label.status().code(),
                            absl::StrCat("document ", doc, " (", (*stream)->location(),
                                         "): ", label.status().message()));
      }
      store_pair(s, *label);
    }
    if (auto st = finish_sample(std::move(s)); !st.ok()) return st;
  }
  if (!window.empty()) {
    if (auto st = label_window(); !st.ok()) return st;
  }
  if (!pending.empty()) {
    if (auto st = WriteSegment(partial, header, pending); !st.ok()) return st;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.samples_per_s = report.seconds > 0 ? report.computed / report.seconds : 0;
  report.malformed_lines = (*stream)->malformed_lines();
  report.empty_texts = (*stream)->empty_texts();
  if (doc == 0) {
    return absl::InvalidArgumentError(absl::StrCat(o.source, ": no usable document (",
                                                   report.malformed_lines, " malformed lines, ",
                                                   report.empty_texts, " empty texts)"));
  }
  if (report.stopped_early) {
    report.samples = report.resumed + report.computed;
    return report;
  }

  // Join the segments into OUT; only then remove them.
  segments.clear();
  for (const std::string& n : ListDir(partial)) {
    if (absl::StartsWith(n, "seg_") && absl::EndsWith(n, ".h5"))
      segments.push_back(models::JoinPath(partial, n));
  }
  if (segments.empty()) {  // a shard with no document
    if (auto st = WriteDatasetFile(o.out, header, {}); !st.ok()) return st;
  } else if (auto st = dataset::JoinKvDatasets(segments, o.out, header.shard); !st.ok()) {
    return st;
  }
  RemoveOwnPartial(partial);
  auto summary = SummarizeGenData(o.out);
  if (!summary.ok()) return summary.status();
  report.samples = summary->samples;
  report.class_counts = summary->class_counts;
  report.candidate_steps = summary->candidate_steps;
  report.label_metric = summary->label_metric;
  report.median_excess_nll = summary->median_excess_nll;
  return report;
}

}  // namespace

absl::Status MergeGenDataShards(const std::vector<std::string>& parts, const std::string& out) {
  if (parts.empty()) return absl::InvalidArgumentError("merge: no shard files given");
  int n = -1;
  std::vector<int> seen;
  for (const std::string& p : parts) {
    auto r = KvDatasetReader::Open(p);
    if (!r.ok()) return r.status();
    const std::vector<std::string> f = absl::StrSplit((*r)->header().shard, '/');
    int i = 0, count = 0;
    if (f.size() != 2 || !absl::SimpleAtoi(f[0], &i) || !absl::SimpleAtoi(f[1], &count)) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, ": bad shard attribute \"", (*r)->header().shard, "\""));
    }
    if (n >= 0 && count != n) {
      return absl::InvalidArgumentError(
          absl::StrCat(p, " is shard ", i, "/", count, ", the others are of ", n));
    }
    n = count;
    if (std::find(seen.begin(), seen.end(), i) != seen.end()) {
      return absl::InvalidArgumentError(absl::StrCat(p, ": shard ", i, "/", n, " given twice"));
    }
    seen.push_back(i);
  }
  if (static_cast<int>(seen.size()) != n) {
    std::vector<int> missing;
    for (int i = 0; i < n; ++i) {
      if (std::find(seen.begin(), seen.end(), i) == seen.end()) missing.push_back(i);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("merge: shards ", absl::StrJoin(missing, ", "), " of ", n, " are missing"));
  }
  return dataset::JoinKvDatasets(parts, out, "0/1");
}

}  // namespace pmpd::data_gen
