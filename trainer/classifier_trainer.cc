#include "trainer/classifier_trainer.h"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/atomic_file.h"
#include "base/json_integer.h"
#include "dataset/kv_dataset.h"
#include "models/file_util.h"
#include "models/model_fingerprint.h"
#include "scheduler_runtime/kv_classifier_module.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "trainer/classifier_state.h"

namespace pmpd::trainer {
namespace {

using scheduler::KvClassifierNet;

// One prompt, pooled over heads as the architecture does first: [T, D] each.
struct Example {
  torch::Tensor kbar, vbar;
  int label = 0;
};

}  // namespace

absl::Status CheckTrainOptions(const TrainOptions& o) {
  if (o.epochs < 1 || o.batch_size < 1 || o.grad_accum < 1 || o.patience < 1) {
    return absl::InvalidArgumentError(
        "--epochs, --batch-size, --grad-accum and --patience must be >= 1");
  }
  if (!(o.lr > 0) || !(o.weight_decay >= 0) || !(o.dropout >= 0 && o.dropout < 1)) {
    return absl::InvalidArgumentError("need --lr > 0, --weight-decay >= 0 and 0 <= --dropout < 1");
  }
  if (!(o.val_fraction > 0 && o.val_fraction < 1)) {
    return absl::InvalidArgumentError("--val-fraction must be in (0, 1)");
  }
  if (!(o.test_fraction >= 0 && o.val_fraction + o.test_fraction < 1)) {
    return absl::InvalidArgumentError(
        "--test-fraction must be >= 0 and leave room for training (val + test < 1)");
  }
  if (!(o.label_tolerance >= 0 && std::isfinite(o.label_tolerance))) {
    return absl::InvalidArgumentError(
        "--label-tolerance must be >= 0 (a Rouge-L F difference, or nats per token)");
  }
  for (size_t i = 0; i < o.candidate_steps.size(); ++i) {
    if (o.candidate_steps[i] < 0 || (i > 0 && o.candidate_steps[i] <= o.candidate_steps[i - 1])) {
      return absl::InvalidArgumentError(
          "--candidate-steps must be increasing non-negative steps (a subset of the data file's)");
    }
  }
  if (o.balance != "weighted" && o.balance != "oversample" && o.balance != "none") {
    return absl::InvalidArgumentError("--balance must be weighted, oversample or none");
  }
  if (o.device != "cpu" && o.device != "cuda")
    return absl::InvalidArgumentError("--device must be cpu or cuda");
  return absl::OkStatus();
}

namespace {

// Pads a batch to its longest prompt: kbar, vbar [B, Tmax, D], mask [B, Tmax], labels [B].
struct Batch {
  torch::Tensor kbar, vbar, mask, labels;
};
Batch MakeBatch(const std::vector<Example>& data, const std::vector<int>& idx,
                const torch::Device& device) {
  int64_t tmax = 0;
  for (int i : idx) tmax = std::max(tmax, data[i].kbar.size(0));
  const int64_t B = static_cast<int64_t>(idx.size()), D = data[idx[0]].kbar.size(1);
  Batch b;
  b.kbar = torch::zeros({B, tmax, D});
  b.vbar = torch::zeros({B, tmax, D});
  b.mask = torch::zeros({B, tmax}, torch::kBool);
  std::vector<int64_t> labels;
  for (int64_t r = 0; r < B; ++r) {
    const Example& e = data[idx[r]];
    const int64_t t = e.kbar.size(0);
    b.kbar[r].narrow(0, 0, t).copy_(e.kbar);
    b.vbar[r].narrow(0, 0, t).copy_(e.vbar);
    b.mask[r].narrow(0, 0, t).fill_(true);
    labels.push_back(e.label);
  }
  b.labels = torch::tensor(labels, torch::kLong);
  b.kbar = b.kbar.to(device);
  b.vbar = b.vbar.to(device);
  b.mask = b.mask.to(device);
  b.labels = b.labels.to(device);
  return b;
}

}  // namespace

scheduler::ClassifierState ExportedState(KvClassifierNet& net) {
  scheduler::ClassifierState s;
  for (const auto& p : net->named_parameters()) {
    torch::Tensor t = p.value().detach().to(torch::kCPU).contiguous();
    if (p.key() == "length.weight") t = t / net->length_scale;
    if (p.key() == "length.bias") {
      t = t - net->length->weight.detach().to(torch::kCPU).squeeze(1) *
                  (net->length_center / net->length_scale);
    }
    scheduler::ClassifierTensor ct;
    ct.shape = t.sizes().vec();
    ct.values.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    s[p.key()] = std::move(ct);
  }
  return s;
}

namespace {

nlohmann::json EpochJson(const EpochMetrics& e) {
  return {{"epoch", e.epoch},
          {"train_loss", e.train_loss},
          {"val_loss", e.val_loss},
          {"seconds", e.seconds},
          {"val_accuracy", e.val.accuracy},
          {"val_macro_f1", e.val.macro_f1},
          {"confusion", e.val.confusion}};
}
// An integer of a checkpoint's metadata, range-checked (a float or a wide value would be undefined
// behaviour or wrap in get<int>()); throws, as the rest of the metadata reading does.
int MetaInt(const nlohmann::json& j, const char* key) {
  if (auto v = base::JsonInteger(j.at(key), 0, int64_t{1} << 30)) return static_cast<int>(*v);
  throw std::runtime_error(absl::StrCat("\"", key, "\" is not a small non-negative integer"));
}

EpochMetrics EpochFromJson(const nlohmann::json& j) {
  EpochMetrics e;
  e.epoch = MetaInt(j, "epoch");
  e.train_loss = j.at("train_loss");
  e.val_loss = j.at("val_loss");
  e.seconds = j.at("seconds");
  e.val.accuracy = j.at("val_accuracy");
  e.val.macro_f1 = j.at("val_macro_f1");
  e.val.confusion = j.at("confusion").get<std::vector<std::vector<int64_t>>>();
  return e;
}

// Everything the trained weights depend on; a checkpoint with another value is not resumed.
std::string RunFingerprint(const TrainOptions& o, const std::string& data_fingerprint, int hi,
                           int lo) {
  return absl::StrCat(
      "data=", data_fingerprint, ";pair=", hi, "_", lo, ";epochs=", o.epochs, ";lr=", o.lr,
      ";wd=", o.weight_decay, ";dropout=", o.dropout, ";accum=", o.grad_accum,
      ";batch=", o.batch_size, ";val=", o.val_fraction,
      o.test_fraction > 0 ? absl::StrCat(";test=", o.test_fraction) : "", ";seed=", o.seed,
      ";balance=", o.balance, ";patience=", o.patience, ";device=", o.device,
      o.label_tolerance > 0 ? absl::StrCat(";label_tolerance=", o.label_tolerance) : "",
      o.candidate_steps.empty() ? ""
                                : absl::StrCat(";steps=", absl::StrJoin(o.candidate_steps, ",")),
      o.prompt_length_input ? ";prompt_length_input" : "");
}

}  // namespace

bool CudaAvailable() { return torch::cuda::is_available(); }

absl::StatusOr<std::vector<size_t>> CandidateStepIndices(const std::vector<int64_t>& steps,
                                                         const std::vector<int64_t>& file_steps,
                                                         const std::string& data_path) {
  std::vector<size_t> index;
  for (int64_t s : steps.empty() ? file_steps : steps) {
    const auto it = std::find(file_steps.begin(), file_steps.end(), s);
    if (it == file_steps.end()) {
      return absl::InvalidArgumentError(absl::StrCat(data_path, ": --candidate-steps ", s,
                                                     " is not one of the file's candidate steps ",
                                                     absl::StrJoin(file_steps, ",")));
    }
    index.push_back(static_cast<size_t>(it - file_steps.begin()));
  }
  return index;
}

absl::StatusOr<std::vector<double>> ParseLabelTolerances(const std::string& text, size_t pairs) {
  std::vector<double> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    double v = 0;
    if (!absl::SimpleAtod(absl::StripAsciiWhitespace(part), &v) || !(v >= 0) || !std::isfinite(v)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--label-tolerance \"", text, "\": need numbers >= 0, comma-separated"));
    }
    out.push_back(v);
  }
  if (out.size() == 1) out.assign(pairs, out[0]);
  if (out.size() != pairs) {
    return absl::InvalidArgumentError(absl::StrCat("--label-tolerance \"", text, "\" has ",
                                                   out.size(),
                                                   " values; give one, or one per "
                                                   "precision pair (",
                                                   pairs, ")"));
  }
  return out;
}

absl::Status CheckLabelTolerance(const std::string& label_metric, double tolerance,
                                 const std::string& data_path) {
  if (label_metric == dataset::kLabelRougeL && tolerance >= 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(data_path, " has Rouge-L labels: --label-tolerance ", tolerance,
                     " must be in [0, 1) (a Rouge-L F difference, 0.01 = 1 point)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ParseCandidateSteps(const std::string& text) {
  if (text.empty()) return std::vector<int64_t>{};
  auto steps = scheduler::ParseIntList(text, "--candidate-steps");
  if (!steps.ok()) return steps.status();
  return std::vector<int64_t>(steps->begin(), steps->end());
}

absl::Status CheckLabelOptions(const std::string& label_metric,
                               const std::vector<int64_t>& file_steps,
                               const std::vector<int64_t>& steps,
                               const std::vector<double>& tolerances,
                               const std::string& data_path) {
  if (auto indices = CandidateStepIndices(steps, file_steps, data_path); !indices.ok())
    return indices.status();
  for (double t : tolerances) {
    if (auto st = CheckLabelTolerance(label_metric, t, data_path); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> TrainPairClassifier(
    const std::string& data_path, int hi, int lo, const TrainOptions& o,
    const std::function<bool(const EpochMetrics&)>& on_epoch) {
  if (auto st = CheckTrainOptions(o); !st.ok()) return st;
  if (o.device == "cuda" && !torch::cuda::is_available()) {
    return absl::FailedPreconditionError("--device cuda: this LibTorch build sees no CUDA device");
  }
  const torch::Device device(o.device == "cuda" ? torch::kCUDA : torch::kCPU);
  auto reader = dataset::KvDatasetReader::Open(data_path);
  if (!reader.ok()) return reader.status();
  auto table = (*reader)->ReadPair(hi, lo);
  if (!table.ok()) return table.status();
  const auto& header = (*reader)->header();
  // The steps trained on, as indices into the file's candidate steps.
  auto indices = CandidateStepIndices(o.candidate_steps, header.candidate_steps, data_path);
  if (!indices.ok()) return indices.status();
  const std::vector<size_t>& step_index = *indices;
  if (auto st = CheckLabelTolerance(header.label_metric, o.label_tolerance, data_path); !st.ok())
    return st;
  const bool relabel = o.label_tolerance > 0 || step_index.size() != header.candidate_steps.size();
  const int num_classes = static_cast<int>(step_index.size()) + 1;
  const int64_t n = (*reader)->num_samples();
  if (n < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(data_path, ": ", n, " samples; need at least 4 to train and validate"));
  }
  TrainResult result;
  result.high = hi;
  result.low = lo;
  for (size_t j : step_index) result.candidate_steps.push_back(header.candidate_steps[j]);
  result.device = o.device;
  result.label_tolerance = o.label_tolerance;
  result.label_metric = header.label_metric;
  result.spec.kv_heads = header.kv_heads;
  result.spec.head_dim = header.head_dim;
  result.spec.num_classes = num_classes;
  result.spec.prompt_length_input = o.prompt_length_input;
  result.spec.dropout = o.dropout;

  // Load every sample once, pooled over heads (the architecture's first step): O(n * T * D) memory.
  std::vector<Example> data(n);
  std::vector<float> k, v;
  for (int64_t i = 0; i < n; ++i) {
    if (auto st = (*reader)->ReadKv(*table, i, &k, &v); !st.ok()) return st;
    for (const std::vector<float>* x : {&k, &v}) {  // NaN or inf would end as "no epoch finished"
      if (!std::all_of(x->begin(), x->end(), [](float f) { return std::isfinite(f); })) {
        return absl::InvalidArgumentError(
            absl::StrCat(data_path, ": sample ", i, " (document ", table->doc_ids[i], ") of pair ",
                         hi, "->", lo, " has a NaN or infinite ", x == &k ? "K" : "V", " value"));
      }
    }
    const int64_t t = table->prompt_lengths[i];
    data[i].kbar =
        torch::from_blob(k.data(), {header.kv_heads, t, header.head_dim}).mean(0).clone();
    data[i].vbar =
        torch::from_blob(v.data(), {header.kv_heads, t, header.head_dim}).mean(0).clone();
    if (relabel) {
      data[i].label = dataset::RelabelSample(header, *table, i, step_index, o.label_tolerance);
    } else {
      data[i].label = table->labels[i];
    }
  }
  // Deterministic split: a seeded permutation; the first val_fraction is validation, the next
  // test_fraction the test split (so adding a test split leaves the validation split as it was).
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 split_rng(o.seed ^ 0x5EEDull);
  std::shuffle(order.begin(), order.end(), split_rng);
  const int n_val = std::max<int>(1, static_cast<int>(std::lround(o.val_fraction * n)));
  const int n_test = o.test_fraction > 0
                         ? std::max<int>(1, static_cast<int>(std::lround(o.test_fraction * n)))
                         : 0;
  if (n_val + n_test >= n) {
    return absl::InvalidArgumentError(absl::StrCat(data_path, ": ", n,
                                                   " samples leave none for training after ", n_val,
                                                   " validation and ", n_test, " test samples"));
  }
  std::vector<int> val(order.begin(), order.begin() + n_val),
      test(order.begin() + n_val, order.begin() + n_val + n_test),
      train(order.begin() + n_val + n_test, order.end());
  result.train_samples = static_cast<int>(train.size());
  result.val_samples = n_val;
  result.train_class_counts.assign(num_classes, 0);
  result.val_class_counts.assign(num_classes, 0);
  for (int i : train) ++result.train_class_counts[data[i].label];
  for (int i : val) ++result.val_class_counts[data[i].label];
  result.majority_class = static_cast<int>(
      std::max_element(result.train_class_counts.begin(), result.train_class_counts.end()) -
      result.train_class_counts.begin());
  {
    std::vector<int> truth;
    for (int i : val) truth.push_back(data[i].label);
    result.majority =
        Classify(truth, std::vector<int>(truth.size(), result.majority_class), num_classes);
  }
  torch::Tensor class_weights = torch::ones({num_classes});
  if (o.balance == "weighted") {
    for (int c = 0; c < num_classes; ++c) {
      const double nc = static_cast<double>(result.train_class_counts[c]);
      class_weights[c] = nc > 0 ? train.size() / (num_classes * nc) : 0.0;
    }
  }
  class_weights = class_weights.to(device);

  // The prompt-length input's standardisation: mean and standard deviation of ln T over the
  // training split.
  double length_center = 0, length_scale = 1;
  if (o.prompt_length_input) {
    double sum = 0, sq = 0;
    for (int i : train) {
      const double l = std::log(static_cast<double>(data[i].kbar.size(0)));
      sum += l;
      sq += l * l;
    }
    length_center = sum / train.size();
    length_scale = std::sqrt(std::max(0.0, sq / train.size() - length_center * length_center));
    if (length_scale < 1e-3) length_scale = 1;  // every prompt as long: the input is a constant
  }
  torch::manual_seed(o.seed);
  KvClassifierNet net(header.kv_heads, header.head_dim, num_classes, o.dropout,
                      o.prompt_length_input);
  net->length_center = length_center;
  net->length_scale = length_scale;
  net->to(device);
  torch::optim::AdamW opt(net->parameters(),
                          torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));

  // Resume from the last checkpoint of the same run.
  auto data_fp = models::FingerprintFile(data_path);
  if (!data_fp.ok()) return data_fp.status();
  // The file's own steps given explicitly are the same run as none given.
  TrainOptions run = o;
  if (run.candidate_steps == header.candidate_steps) run.candidate_steps.clear();
  const std::string fingerprint = RunFingerprint(run, *data_fp, hi, lo);
  const std::string ckpt =
      o.checkpoint_dir.empty()
          ? ""
          : models::JoinPath(o.checkpoint_dir, absl::StrCat("pair_", hi, "_", lo, ".pt"));
  if (!ckpt.empty()) base::RemoveStaleTemporaries(ckpt).IgnoreError();  // a killed run's
  double best_loss = std::numeric_limits<double>::infinity();
  int since_best = 0;
  KvClassifierNet best(header.kv_heads, header.head_dim, num_classes, o.dropout,
                       o.prompt_length_input);
  best->length_center = length_center;
  best->length_scale = length_scale;
  int start_epoch = 1;
  if (!ckpt.empty() && models::FileExists(ckpt)) {
    torch::serialize::InputArchive in;
    try {
      in.load_from(ckpt);
      c10::IValue meta_v;
      in.read("meta", meta_v);
      const auto meta = nlohmann::json::parse(meta_v.toStringRef());
      if (meta.at("fingerprint").get<std::string>() == fingerprint) {
        torch::serialize::InputArchive m, b, op;
        in.read("model", m);
        in.read("best", b);
        in.read("optimizer", op);
        net->load(m);
        best->load(b);
        opt.load(op);
        for (const auto& e : meta.at("epochs")) result.epochs.push_back(EpochFromJson(e));
        result.best_epoch = MetaInt(meta, "best_epoch");
        best_loss = meta.at("best_loss");
        since_best = MetaInt(meta, "since_best");
        result.stopped_early = meta.at("stopped");
        start_epoch = static_cast<int>(result.epochs.size()) + 1;
        result.resumed_epochs = start_epoch - 1;
      } else {
        std::fprintf(stderr, "%s: made with other settings or data; starting over\n", ckpt.c_str());
      }
    } catch (const c10::Error& e) {  // LibTorch's what() carries a backtrace: one line only
      return absl::DataLossError(absl::StrCat(ckpt, ": unreadable checkpoint (",
                                              e.what_without_backtrace(),
                                              "); delete it to start over"));
    } catch (const std::exception& e) {
      return absl::DataLossError(
          absl::StrCat(ckpt, ": unreadable checkpoint (", e.what(), "); delete it to start over"));
    }
  }
  if (!result.stopped_early) {
    for (int epoch = start_epoch; epoch <= o.epochs; ++epoch) {
      const auto t0 = std::chrono::steady_clock::now();
      // Per-epoch randomness comes from (seed, epoch) alone, so a resumed run repeats an
      // uninterrupted one exactly.
      torch::manual_seed(o.seed * 1000003ull + epoch);
      std::mt19937_64 rng(o.seed * 7919ull + epoch);
      std::vector<int> epoch_idx = train;
      if (o.balance == "oversample") {
        std::vector<std::vector<int>> by_class(num_classes);
        for (int i : train) by_class[data[i].label].push_back(i);
        size_t most = 0;
        for (const auto& c : by_class) most = std::max(most, c.size());
        epoch_idx.clear();
        for (const auto& c : by_class) {
          if (c.empty()) continue;
          epoch_idx.insert(epoch_idx.end(), c.begin(), c.end());
          std::uniform_int_distribution<size_t> pick(0, c.size() - 1);
          for (size_t r = c.size(); r < most; ++r) epoch_idx.push_back(c[pick(rng)]);
        }
      }
      std::shuffle(epoch_idx.begin(), epoch_idx.end(), rng);
      net->train();
      double loss_sum = 0;
      int64_t seen = 0;
      opt.zero_grad();
      int batches = 0;
      for (size_t s = 0; s < epoch_idx.size(); s += o.batch_size) {
        std::vector<int> idx(epoch_idx.begin() + s,
                             epoch_idx.begin() + std::min(epoch_idx.size(), s + o.batch_size));
        Batch b = MakeBatch(data, idx, device);
        torch::Tensor logits = net->ForwardPooled(b.kbar, b.vbar, b.mask);
        torch::Tensor loss = torch::nn::functional::cross_entropy(
            logits, b.labels,
            torch::nn::functional::CrossEntropyFuncOptions().weight(class_weights));
        (loss / o.grad_accum).backward();
        loss_sum += loss.item<double>() * idx.size();
        seen += static_cast<int64_t>(idx.size());
        if (++batches % o.grad_accum == 0 || s + o.batch_size >= epoch_idx.size()) {
          opt.step();
          opt.zero_grad();
        }
      }
      // Validation: plain (unweighted) cross-entropy, eval mode.
      net->eval();
      EpochMetrics em;
      em.epoch = epoch;
      em.train_loss = loss_sum / std::max<int64_t>(1, seen);
      {
        torch::NoGradGuard no_grad;
        double vl = 0;
        std::vector<int> truth, pred;
        for (size_t s = 0; s < val.size(); s += o.batch_size) {
          std::vector<int> idx(val.begin() + s,
                               val.begin() + std::min(val.size(), s + o.batch_size));
          Batch b = MakeBatch(data, idx, device);
          torch::Tensor logits = net->ForwardPooled(b.kbar, b.vbar, b.mask);
          vl += torch::nn::functional::cross_entropy(logits, b.labels).item<double>() * idx.size();
          torch::Tensor p = logits.argmax(1).to(torch::kCPU);
          for (size_t r = 0; r < idx.size(); ++r) {
            truth.push_back(data[idx[r]].label);
            pred.push_back(static_cast<int>(p[r].item<int64_t>()));
          }
        }
        em.val_loss = vl / val.size();
        em.val = Classify(truth, pred, num_classes);
      }
      em.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (!std::isfinite(em.train_loss) || !std::isfinite(em.val_loss)) {
        return absl::InvalidArgumentError(
            absl::StrCat("pair ", hi, "->", lo, ", epoch ", epoch, ": the loss diverged (training ",
                         em.train_loss, ", validation ", em.val_loss,
                         "); lower the learning rate (lr ", o.lr, ")"));
      }
      result.epochs.push_back(em);
      if (em.val_loss < best_loss) {
        best_loss = em.val_loss;
        result.best_epoch = epoch;
        since_best = 0;
        torch::NoGradGuard no_grad;
        auto src = net->parameters();
        auto dst = best->parameters();
        for (size_t i = 0; i < src.size(); ++i) dst[i].copy_(src[i].to(torch::kCPU));
      } else {
        ++since_best;
      }
      const bool keep_going = on_epoch ? on_epoch(em) : true;
      // Early stopping is part of the run (saved: a rerun does not continue); a stop asked by
      // on_epoch is an interruption (a rerun continues from this epoch).
      result.stopped_early = since_best >= o.patience;
      if (!ckpt.empty()) {
        if (auto st = models::MakeDirs(o.checkpoint_dir); !st.ok()) return st;
        nlohmann::json meta{{"fingerprint", fingerprint},      {"best_epoch", result.best_epoch},
                            {"best_loss", best_loss},          {"since_best", since_best},
                            {"stopped", result.stopped_early}, {"epochs", nlohmann::json::array()}};
        for (const auto& e : result.epochs) meta["epochs"].push_back(EpochJson(e));
        torch::serialize::OutputArchive out, m, b, op;
        net->save(m);
        best->save(b);
        opt.save(op);
        out.write("model", m);
        out.write("best", b);
        out.write("optimizer", op);
        out.write("meta", c10::IValue(meta.dump()));
        auto file = base::AtomicFile::Create(ckpt);
        if (!file.ok()) return file.status();
        try {
          out.save_to(file->temp_path());
        } catch (const std::exception& e) {
          return absl::InternalError(absl::StrCat(ckpt, ": cannot write checkpoint: ", e.what()));
        }
        if (auto st = file->Commit(); !st.ok()) return st;
      }
      if (result.stopped_early || !keep_going) break;
    }
  }
  if (result.best_epoch == 0) return absl::InternalError("no epoch finished");
  if (!test.empty()) {  // the best weights, once, on samples neither training nor early stopping
                        // saw
    torch::NoGradGuard no_grad;
    best->to(device);
    best->eval();
    std::vector<int> truth, pred;
    for (size_t s = 0; s < test.size(); s += o.batch_size) {
      std::vector<int> idx(test.begin() + s,
                           test.begin() + std::min(test.size(), s + o.batch_size));
      Batch b = MakeBatch(data, idx, device);
      torch::Tensor p = best->ForwardPooled(b.kbar, b.vbar, b.mask).argmax(1).to(torch::kCPU);
      for (size_t r = 0; r < idx.size(); ++r) {
        truth.push_back(data[idx[r]].label);
        pred.push_back(static_cast<int>(p[r].item<int64_t>()));
      }
    }
    result.test_samples = static_cast<int>(test.size());
    result.test_class_counts.assign(num_classes, 0);
    for (int t : truth) ++result.test_class_counts[t];
    result.test = Classify(truth, pred, num_classes);
    result.majority_test =
        Classify(truth, std::vector<int>(truth.size(), result.majority_class), num_classes);
  }
  best->to(torch::kCPU);
  result.state = ExportedState(best);
  return result;
}

}  // namespace pmpd::trainer
