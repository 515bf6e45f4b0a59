// pmpd-train: fit one KV-cache classifier per adjacent precision pair of a pmpd-gen-data file and
// export them for the learned scheduler (pmpd-generate --scheduler learned --classifier DIR).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
#include "dataset/kv_dataset.h"
#include "models/file_util.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "trainer/classifier_export.h"
#include "trainer/classifier_trainer.h"
#include "trainer/training_plot.h"

ABSL_FLAG(std::string, data, "", "pmpd-gen-data HDF5 file. Required.");
ABSL_FLAG(
    std::string, precisions, "4,3,2",
    "Precisions high to low; one classifier per adjacent pair, each must be in the data file.");
ABSL_FLAG(std::string, out, "",
          "Output directory: classifier_<hi>_<lo>.safetensors, manifest.json, "
          "training_<hi>_<lo>.svg, checkpoints/. Required.");
ABSL_FLAG(int, epochs, 30, "Most epochs (early stopping may end sooner).");
ABSL_FLAG(double, lr, 1e-3, "AdamW learning rate.");
ABSL_FLAG(double, weight_decay, 1e-2, "AdamW weight decay.");
ABSL_FLAG(double, dropout, 0.1, "Dropout on the attention weights.");
ABSL_FLAG(int, grad_accum, 1, "Batches per optimizer step.");
ABSL_FLAG(int, batch_size, 16, "Prompts per batch (padded to the longest, masked).");
ABSL_FLAG(double, test_fraction, 0,
          "Also hold out this fraction as a test split (after the validation split; neither "
          "training nor early "
          "stopping sees it): the best epoch's classifier is scored on it once, next to the "
          "majority class.");
ABSL_FLAG(double, val_fraction, 0.1,
          "Validation share of the samples (a seeded, deterministic split).");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the split, the initialisation, dropout and shuffling.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu, cuda, or auto (cuda when LibTorch sees a GPU, else cpu). The default is cpu in "
          "every tool: the same results on any machine.");
ABSL_FLAG(std::string, balance, "weighted",
          "Class balancing: weighted (default; inverse-frequency loss weights: each sample once "
          "per epoch, nothing "
          "repeated to overfit), oversample (the PMPD reference's way), none.");
ABSL_FLAG(std::string, label_tolerance, "0",
          "Relabel from the file's values: a switch step is good when its Rouge-L is within this "
          "much of staying high (rouge_l files: Rouge-L F, e.g. 0.01 = 1 point), or when it adds "
          "at most this many nats per token (excess_nll files). One value, or one per pair (e.g. "
          "0.03,0.2 for 5,4,3). 0: the labels pmpd-gen-data stored.");
ABSL_FLAG(
    std::string, candidate_steps, "",
    "Train on a subset of the file's candidate switch steps (e.g. 0,48 of a file labelled "
    "at 0,12,24,48): labels re-derived from those steps' stored values, fewer classes. Empty: "
    "the file's steps.");
ABSL_FLAG(int, patience, 5, "Early stopping: epochs without a better validation loss.");
ABSL_FLAG(bool, prompt_length_input, false,
          "Give the classifier the prompt length as one more input (architecture "
          "pmpd-reference+prompt-length): the reference's attention pooling cannot see it.");
ABSL_FLAG(bool, json, false, "Print one JSON summary object as the last line.");

namespace {
constexpr char kProgram[] = "pmpd-train";
using namespace pmpd;

std::vector<std::string> ClassNames(const std::vector<int64_t>& steps) {
  std::vector<std::string> names;
  for (int64_t s : steps) names.push_back(absl::StrCat("step", s));
  names.push_back("never");
  return names;
}

int Run() {
  const std::string data = absl::GetFlag(FLAGS_data), out = absl::GetFlag(FLAGS_out);
  if (data.empty() || out.empty())
    return cli::Fail(kProgram, absl::InvalidArgumentError("--data and --out are required"));
  auto precisions =
      scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 2, "--precisions");
  if (!precisions.ok()) return cli::Fail(kProgram, precisions.status());
  // Every option checked before the data file is opened.
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device)); !st.ok())
    return cli::Fail(kProgram, st);
  trainer::TrainOptions o;
  o.epochs = absl::GetFlag(FLAGS_epochs);
  o.lr = absl::GetFlag(FLAGS_lr);
  o.weight_decay = absl::GetFlag(FLAGS_weight_decay);
  o.dropout = absl::GetFlag(FLAGS_dropout);
  o.grad_accum = absl::GetFlag(FLAGS_grad_accum);
  o.batch_size = absl::GetFlag(FLAGS_batch_size);
  o.val_fraction = absl::GetFlag(FLAGS_val_fraction);
  o.test_fraction = absl::GetFlag(FLAGS_test_fraction);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.device = absl::GetFlag(FLAGS_device);
  if (o.device == "auto") o.device = trainer::CudaAvailable() ? "cuda" : "cpu";
  o.balance = absl::GetFlag(FLAGS_balance);
  o.patience = absl::GetFlag(FLAGS_patience);
  o.prompt_length_input = absl::GetFlag(FLAGS_prompt_length_input);
  auto tolerances =
      trainer::ParseLabelTolerances(absl::GetFlag(FLAGS_label_tolerance), precisions->size() - 1);
  if (!tolerances.ok()) return cli::Fail(kProgram, tolerances.status());
  auto steps = trainer::ParseCandidateSteps(absl::GetFlag(FLAGS_candidate_steps));
  if (!steps.ok()) return cli::Fail(kProgram, steps.status());
  o.candidate_steps = *steps;
  o.checkpoint_dir = models::JoinPath(out, "checkpoints");
  if (auto st = trainer::CheckTrainOptions(o); !st.ok()) return cli::Fail(kProgram, st);
  // All pairs must be in the file before any training starts.
  auto reader = dataset::KvDatasetReader::Open(data);
  if (!reader.ok()) return cli::Fail(kProgram, reader.status());
  for (size_t p = 0; p + 1 < precisions->size(); ++p) {
    auto t = (*reader)->ReadPair((*precisions)[p], (*precisions)[p + 1]);
    if (!t.ok()) return cli::Fail(kProgram, t.status());
  }
  if (auto st = trainer::CheckLabelOptions((*reader)->header().label_metric,
                                           (*reader)->header().candidate_steps, o.candidate_steps,
                                           *tolerances, data);
      !st.ok()) {
    return cli::Fail(kProgram, st);
  }
  const std::vector<std::string> names = ClassNames(
      o.candidate_steps.empty() ? (*reader)->header().candidate_steps : o.candidate_steps);
  std::fprintf(stderr, "%s: %lld samples, classes %s\n", data.c_str(),
               static_cast<long long>((*reader)->num_samples()),
               absl::StrJoin(names, ", ").c_str());
  reader->reset();
  std::fprintf(stderr, "training on %s\n", o.device.c_str());

  std::vector<trainer::TrainResult> results;
  nlohmann::json summary = nlohmann::json::array();
  for (size_t p = 0; p + 1 < precisions->size(); ++p) {
    const int hi = (*precisions)[p], lo = (*precisions)[p + 1];
    o.label_tolerance = (*tolerances)[p];
    std::fprintf(stderr, "pair %d->%d\n", hi, lo);
    double epoch_seconds = 0;
    int epochs_seen = 0;
    auto r = trainer::TrainPairClassifier(data, hi, lo, o, [&](const trainer::EpochMetrics& e) {
      // ETA: the remaining epochs of this pair at the mean epoch time so far (early stopping may
      // end sooner), then the remaining pairs as long as this one.
      epoch_seconds += e.seconds;
      ++epochs_seen;
      const double per_epoch = epoch_seconds / epochs_seen;
      const double eta = per_epoch * ((o.epochs - e.epoch) +
                                      o.epochs * static_cast<double>(precisions->size() - 2 - p));
      std::fprintf(stderr,
                   "  epoch %3d/%d  train loss %.4f  val loss %.4f  val acc %.3f  val macro-F1 "
                   "%.3f  (%.1f s; ETA <= %s)\n",
                   e.epoch, o.epochs, e.train_loss, e.val_loss, e.val.accuracy, e.val.macro_f1,
                   e.seconds, cli::FormatDuration(eta).c_str());
      std::string conf = trainer::FormatConfusion(e.val.confusion, names);
      for (const auto& line : absl::StrSplit(conf, '\n', absl::SkipEmpty())) {
        std::fprintf(stderr, "      %s\n", std::string(line).c_str());
      }
      return true;
    });
    if (!r.ok()) return cli::Fail(kProgram, r.status());
    if (r->resumed_epochs > 0)
      std::fprintf(stderr, "  resumed %d epochs from %s\n", r->resumed_epochs,
                   o.checkpoint_dir.c_str());
    const auto& best = r->epochs[r->best_epoch - 1];
    std::fprintf(stderr,
                 "  best epoch %d: val loss %.4f, accuracy %.3f, macro-F1 %.3f | majority class "
                 "(%s): accuracy %.3f, "
                 "macro-F1 %.3f%s\n",
                 r->best_epoch, best.val_loss, best.val.accuracy, best.val.macro_f1,
                 names[r->majority_class].c_str(), r->majority.accuracy, r->majority.macro_f1,
                 r->stopped_early ? " (stopped early)" : "");
    if (r->test_samples > 0) {
      std::fprintf(stderr,
                   "  test split (%d samples): accuracy %.3f, macro-F1 %.3f | majority class: "
                   "accuracy %.3f, "
                   "macro-F1 %.3f\n",
                   r->test_samples, r->test.accuracy, r->test.macro_f1, r->majority_test.accuracy,
                   r->majority_test.macro_f1);
    }
    if (auto st = models::MakeDirs(out); !st.ok()) return cli::Fail(kProgram, st);
    const std::string svg = models::JoinPath(out, absl::StrCat("training_", hi, "_", lo, ".svg"));
    if (auto st = trainer::WriteTrainingSvg(
            svg, absl::StrCat("classifier ", hi, "->", lo, " on ", data), *r);
        !st.ok()) {
      return cli::Fail(kProgram, st);
    }
    summary.push_back({{"pair", absl::StrCat(hi, "_", lo)},
                       {"metrics", nlohmann::json::parse(trainer::MetricsJson(*r, o))}});
    results.push_back(std::move(*r));
  }
  if (auto st = trainer::ExportClassifiers(out, data, results, o); !st.ok())
    return cli::Fail(kProgram, st);
  std::fprintf(stderr, "wrote %s/manifest.json and %zu classifiers\n", out.c_str(), results.size());
  if (absl::GetFlag(FLAGS_json))
    std::cout << nlohmann::json{{"out", out}, {"pairs", summary}}.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::InitUsage(
      "pmpd-train --data FILE.h5 --precisions 4,3,2 --out DIR [--epochs N] [--lr X] "
      "[--weight-decay X] [--dropout X]\n"
      "           [--grad-accum N] [--batch-size N] [--val-fraction 0.1] [--seed S] [--device "
      "cpu|cuda] [--json]\n\n"
      "Trains the learned scheduler's KV-cache classifiers (one per adjacent precision pair) on a "
      "pmpd-gen-data file.\n"
      "An interrupted run resumes from OUT/checkpoints when rerun with the same flags; the same "
      "seed gives the same\n"
      "classifiers.",
      {{"Data",
        {"data", "precisions", "label_tolerance", "candidate_steps", "val_fraction",
         "test_fraction", "seed"}},
       {"Training",
        {"device", "epochs", "patience", "lr", "weight_decay", "dropout", "grad_accum",
         "batch_size", "balance", "prompt_length_input"}},
       {"Output", {"out", "json"}}});
  cli::ParseFlags(argc, argv);
  return cli::RunGuarded("pmpd-train", [] { return Run(); });
}
