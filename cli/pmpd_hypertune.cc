// pmpd-hypertune: hyperparameter search for the learned scheduler's classifiers with our own TPE
// (hpo/), objective = validation loss of pmpd-train's trainer, best trial exported in pmpd-train's
// format. The only place where hpo/ meets the trainer.
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/atomic_file.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
#include "dataset/kv_dataset.h"
#include "hpo/run_study.h"
#include "hpo/search_space.h"
#include "hpo/study.h"
#include "hpo/study_report.h"
#include "models/file_util.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "trainer/classifier_export.h"
#include "trainer/classifier_trainer.h"

ABSL_FLAG(std::string, data, "", "pmpd-gen-data HDF5 file. Required.");
ABSL_FLAG(std::string, precisions, "4,3",
          "Precisions high to low; every adjacent pair is trained per trial and the "
          "objective is the mean of their best validation losses.");
ABSL_FLAG(int, trials, 100,
          "Finished trials (complete + pruned) the study ends with, counting earlier runs.");
ABSL_FLAG(int, jobs, 1, "Worker threads. Several processes may also share one --study directory.");
ABSL_FLAG(std::string, study, "",
          "Study directory (journal.jsonl; rerun to resume). Default: OUT/study.");
ABSL_FLAG(std::string, space, "",
          "Search space JSON (hpo/README.md). Default: the built-in space (see --help).");
ABSL_FLAG(std::string, sampler, "tpe", "tpe or random.");
ABSL_FLAG(std::string, pruner, "median",
          "median, asha or none, on the first pair's validation loss after each epoch (median: not "
          "before epoch "
          "5, after 5 complete trials; asha: first rung at epoch 5, reduction factor 4).");
ABSL_FLAG(uint64_t, seed, 0,
          "Study seed (trial n samples from a stream of (seed, n)); also the training seed, so "
          "every trial sees the same train/validation split.");
ABSL_FLAG(std::string, device, "cpu",
          "Training device: cpu, cuda, or auto (cuda when LibTorch sees a GPU, else cpu). The "
          "default is cpu in every tool: the same results on any machine.");
ABSL_FLAG(bool, enqueue_defaults, true,
          "Try pmpd-train's default hyperparameters as trial 0 (warm start).");
ABSL_FLAG(std::string, out, "",
          "Output: the best trial's classifiers (pmpd-train format), trials.csv, "
          "leaderboard.txt, history.svg, importance.txt. Required.");
ABSL_FLAG(std::string, label_tolerance, "0",
          "As pmpd-train --label-tolerance: relabel from the file's values with this tolerance "
          "(one value, or one per pair).");
ABSL_FLAG(std::string, candidate_steps, "",
          "As pmpd-train --candidate-steps: train on a subset of the file's switch steps.");
ABSL_FLAG(std::string, balance, "weighted",
          "As pmpd-train --balance (weighted, oversample, none), for every trial.");
ABSL_FLAG(bool, prompt_length_input, false,
          "As pmpd-train --prompt-length-input, for every trial.");
ABSL_FLAG(bool, json, false,
          "Print one JSON object (completed, best_value, best_params, ...) as the last line.");

namespace {
constexpr char kProgram[] = "pmpd-hypertune";
using namespace pmpd;

// The reference tunes learning rate, epochs, gradient accumulation, weight decay and dropout. We
// search the learning rate and weight decay log-uniformly: their useful values span orders of
// magnitude, where a uniform range spends most trials at the top decade.
constexpr char kDefaultSpace[] = R"({"params": [
  {"name": "lr", "type": "float", "low": 1e-5, "high": 1e-1, "log": true},
  {"name": "epochs", "type": "int", "low": 5, "high": 60, "step": 5},
  {"name": "grad_accum", "type": "categorical", "choices": [1, 2, 4, 8]},
  {"name": "weight_decay", "type": "float", "low": 1e-5, "high": 1e-1, "log": true},
  {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5, "step": 0.05}]})";

int Run() {
  const std::string data = absl::GetFlag(FLAGS_data), out = absl::GetFlag(FLAGS_out);
  if (data.empty() || out.empty())
    return cli::Fail(kProgram, absl::InvalidArgumentError("--data and --out are required"));
  if (absl::GetFlag(FLAGS_trials) < 1 || absl::GetFlag(FLAGS_jobs) < 1) {
    return cli::Fail(kProgram, absl::InvalidArgumentError("--trials and --jobs must be >= 1"));
  }
  auto precisions =
      scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 2, "--precisions");
  if (!precisions.ok()) return cli::Fail(kProgram, precisions.status());
  // Every flag checked before the data file is read.
  const std::string sampler = absl::GetFlag(FLAGS_sampler), pruner = absl::GetFlag(FLAGS_pruner);
  if (sampler != "tpe" && sampler != "random")
    return cli::Fail(kProgram, absl::InvalidArgumentError("--sampler must be tpe or random"));
  if (pruner != "median" && pruner != "asha" && pruner != "none") {
    return cli::Fail(kProgram, absl::InvalidArgumentError("--pruner must be median, asha or none"));
  }
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device)); !st.ok())
    return cli::Fail(kProgram, st);
  auto parsed_steps = trainer::ParseCandidateSteps(absl::GetFlag(FLAGS_candidate_steps));
  if (!parsed_steps.ok()) return cli::Fail(kProgram, parsed_steps.status());
  const std::vector<int64_t> step_subset = *parsed_steps;
  auto tolerances =
      trainer::ParseLabelTolerances(absl::GetFlag(FLAGS_label_tolerance), precisions->size() - 1);
  if (!tolerances.ok()) return cli::Fail(kProgram, tolerances.status());
  {
    trainer::TrainOptions defaults;
    defaults.candidate_steps = step_subset;
    defaults.balance = absl::GetFlag(FLAGS_balance);
    defaults.device = "cpu";  // checked above; auto is resolved per trial
    if (auto st = trainer::CheckTrainOptions(defaults); !st.ok()) return cli::Fail(kProgram, st);
  }
  {
    auto reader = dataset::KvDatasetReader::Open(data);
    if (!reader.ok()) return cli::Fail(kProgram, reader.status());
    for (size_t p = 0; p + 1 < precisions->size(); ++p) {
      auto t = (*reader)->ReadPair((*precisions)[p], (*precisions)[p + 1]);
      if (!t.ok()) return cli::Fail(kProgram, t.status());
    }
    if (auto st = trainer::CheckLabelOptions((*reader)->header().label_metric,
                                             (*reader)->header().candidate_steps, step_subset,
                                             *tolerances, data);
        !st.ok()) {
      return cli::Fail(kProgram, st);
    }
  }
  absl::StatusOr<hpo::SearchSpace> space =
      absl::GetFlag(FLAGS_space).empty()
          ? hpo::SearchSpace::FromJson(nlohmann::json::parse(kDefaultSpace), "the built-in space")
          : hpo::SearchSpace::FromFile(absl::GetFlag(FLAGS_space));
  if (!space.ok()) return cli::Fail(kProgram, space.status());
  for (size_t i = 0; i < space->size(); ++i) {
    const std::string& n = space->param(i).name;
    if (n != "lr" && n != "epochs" && n != "grad_accum" && n != "weight_decay" && n != "dropout" &&
        n != "batch_size" && n != "patience") {
      return cli::Fail(
          kProgram,
          absl::InvalidArgumentError(absl::StrCat(
              absl::GetFlag(FLAGS_space), ": parameter \"", n,
              "\" is not a pmpd-train "
              "hyperparameter (lr, epochs, grad_accum, weight_decay, dropout, batch_size, "
              "patience)")));
    }
    // Integer hyperparameters must be searched as integers: a float value was truncated (2.0959
    // epochs trained 2 and was reported as 2.0959).
    const hpo::ParamSpec& spec = space->param(i);
    const bool integral =
        n == "epochs" || n == "grad_accum" || n == "batch_size" || n == "patience";
    bool ok = !integral || spec.type == hpo::ParamType::kInt;
    if (integral && spec.type == hpo::ParamType::kCategorical) {
      ok = std::all_of(spec.choices.begin(), spec.choices.end(),
                       [](const nlohmann::json& c) { return c.is_number_integer(); });
    }
    if (!ok) {
      return cli::Fail(kProgram,
                       absl::InvalidArgumentError(absl::StrCat(
                           absl::GetFlag(FLAGS_space), ": parameter \"", n,
                           "\" is an integer hyperparameter: declare it \"type\": \"int\" (or "
                           "categorical with integer choices)")));
    }
  }
  hpo::StudyOptions so;
  so.seed = absl::GetFlag(FLAGS_seed);
  if (sampler == "tpe") {
    so.sampler.type = hpo::SamplerConfig::Type::kTpe;
  } else {
    so.sampler.type = hpo::SamplerConfig::Type::kRandom;
  }
  so.sampler.tpe.constant_liar = absl::GetFlag(FLAGS_jobs) > 1;
  // What a trial's value depends on besides the searched parameters: a rerun on the same study
  // with another data file, ladder, labels or model options would mix incomparable trials.
  so.objective_context = {{"data", data},
                          {"precisions", *precisions},
                          {"label_tolerance", *tolerances},
                          {"candidate_steps", step_subset},
                          {"balance", absl::GetFlag(FLAGS_balance)},
                          {"prompt_length_input", absl::GetFlag(FLAGS_prompt_length_input)}};
  // Validation losses of the first epochs are noisy: judging trials there prunes good learning
  // rates that start slowly, so neither pruner acts before epoch 5.
  if (pruner == "median") {
    so.pruner.type = hpo::PrunerConfig::Type::kMedian;
    so.pruner.median.n_warmup_steps = 5;
  } else if (pruner == "asha") {
    so.pruner.type = hpo::PrunerConfig::Type::kSuccessiveHalving;
    so.pruner.successive_halving.min_resource = 5;
  } else {
    so.pruner.type = hpo::PrunerConfig::Type::kNone;
  }
  so.warn = [](const std::string& w) {
    std::fprintf(stderr, "%s: warning: %s\n", kProgram, w.c_str());
  };
  const std::string study_dir = absl::GetFlag(FLAGS_study).empty() ? models::JoinPath(out, "study")
                                                                   : absl::GetFlag(FLAGS_study);
  if (auto st = models::MakeDirs(study_dir); !st.ok()) return cli::Fail(kProgram, st);
  auto study = hpo::Study::Open(study_dir, *space, so);
  if (!study.ok()) return cli::Fail(kProgram, study.status());
  trainer::TrainOptions defaults;
  defaults.candidate_steps = step_subset;
  defaults.balance = absl::GetFlag(FLAGS_balance);
  defaults.prompt_length_input = absl::GetFlag(FLAGS_prompt_length_input);
  if (absl::GetFlag(FLAGS_enqueue_defaults)) {
    nlohmann::json p = {{"lr", defaults.lr},
                        {"epochs", defaults.epochs},
                        {"grad_accum", defaults.grad_accum},
                        {"weight_decay", defaults.weight_decay},
                        {"dropout", defaults.dropout},
                        {"batch_size", defaults.batch_size},
                        {"patience", defaults.patience}};
    nlohmann::json in_space = nlohmann::json::object();
    for (size_t i = 0; i < space->size(); ++i)
      in_space[space->param(i).name] = p[space->param(i).name];
    if (auto st = (*study)->Enqueue(in_space); !st.ok())
      return cli::Fail(kProgram, st);  // no-op when queued before
  }

  // A trial: train every pair with its hyperparameters. The first pair's validation loss after each
  // epoch is the intermediate value (step = epoch) the pruners compare across trials; later pairs
  // run to the end once a trial survived the first.
  auto train_options = [&](const hpo::Trial& t) {
    trainer::TrainOptions o = defaults;
    o.seed = absl::GetFlag(FLAGS_seed);
    o.device = absl::GetFlag(FLAGS_device);
    if (o.device == "auto") o.device = trainer::CudaAvailable() ? "cuda" : "cpu";
    for (size_t i = 0; i < space->size(); ++i) {
      const std::string& n = space->param(i).name;
      const nlohmann::json v = t.Value(n);
      if (n == "lr") o.lr = v.get<double>();
      if (n == "weight_decay") o.weight_decay = v.get<double>();
      if (n == "dropout") o.dropout = v.get<double>();
      if (n == "epochs") o.epochs = v.get<int>();
      if (n == "grad_accum") o.grad_accum = v.get<int>();
      if (n == "batch_size") o.batch_size = v.get<int>();
      if (n == "patience") o.patience = v.get<int>();
    }
    o.checkpoint_dir =
        models::JoinPath(study_dir, absl::StrCat("trial_", t.number(), "/checkpoints"));
    return o;
  };
  std::mutex print;
  hpo::Objective objective = [&](hpo::TrialContext& ctx) -> absl::StatusOr<double> {
    trainer::TrainOptions o = train_options(ctx.trial());
    double sum = 0;
    std::vector<trainer::TrainResult> results;
    for (size_t p = 0; p + 1 < precisions->size(); ++p) {
      o.label_tolerance = (*tolerances)[p];
      bool pruned = false;
      auto r = trainer::TrainPairClassifier(data, (*precisions)[p], (*precisions)[p + 1], o,
                                            [&](const trainer::EpochMetrics& e) {
                                              if (p > 0) return true;
                                              (void)ctx.Report(e.epoch, e.val_loss);
                                              pruned = ctx.ShouldPrune();
                                              return !pruned;
                                            });
      if (!r.ok()) return r.status();
      if (pruned) return hpo::TrialPruned();
      sum += r->epochs[r->best_epoch - 1].val_loss;
      results.push_back(std::move(*r));
    }
    // Keep the trial's classifiers so the best one is exported without retraining.
    const std::string dir =
        models::JoinPath(study_dir, absl::StrCat("trial_", ctx.number(), "/classifiers"));
    if (auto st = trainer::ExportClassifiers(dir, data, results, o); !st.ok()) return st;
    return sum / static_cast<double>(results.size());
  };
  hpo::RunOptions ro;
  ro.n_trials = absl::GetFlag(FLAGS_trials);
  ro.jobs = absl::GetFlag(FLAGS_jobs);
  // ETA on each trial line: this run's trials so far give the time per trial (over --jobs
  // workers); the study may already hold earlier runs' trials, which count toward --trials.
  int finished_here = 0;
  const auto run_start = std::chrono::steady_clock::now();
  ro.on_trial_end = [&](const hpo::FrozenTrial& t) {
    std::lock_guard<std::mutex> lock(print);
    ++finished_here;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
    std::string eta;
    if (auto trials = (*study)->Trials(); trials.ok()) {
      int64_t finished = 0;
      for (const auto& f : *trials) {
        finished += f.state == hpo::TrialState::kComplete || f.state == hpo::TrialState::kPruned;
      }
      const int64_t left = std::max<int64_t>(0, ro.n_trials - finished);
      eta = absl::StrCat("  [", finished, "/", ro.n_trials, ", ETA ",
                         cli::FormatDuration(elapsed / finished_here * left), "]");
    }
    std::fprintf(stderr, "trial %3lld %-8s value %s  %s  (%.1f s)%s\n",
                 static_cast<long long>(t.number), hpo::TrialStateName(t.state),
                 t.value ? absl::StrCat(*t.value).c_str() : "-",
                 hpo::ParamsToJson(*space, t.params).dump().c_str(), t.duration_s(), eta.c_str());
  };
  if (auto st = hpo::RunStudy(**study, objective, ro); !st.ok()) return cli::Fail(kProgram, st);

  // Processes sharing this study finish at different times: one at a time reads the trials and
  // writes the report and the export (an flock on OUT/.export.lock, released at exit).
  if (auto st = models::MakeDirs(out); !st.ok()) return cli::Fail(kProgram, st);
  const std::string lock_path = models::JoinPath(out, ".export.lock");
  const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX) != 0) {
    return cli::Fail(kProgram, absl::InternalError(absl::StrCat(
                                   lock_path, ": cannot lock: ", std::strerror(errno))));
  }
  auto trials = (*study)->Trials();
  if (!trials.ok()) return cli::Fail(kProgram, trials.status());
  auto best = (*study)->BestTrial();
  if (!best.ok()) return cli::Fail(kProgram, best.status());
  if (!best->has_value())
    return cli::Fail(kProgram, absl::FailedPreconditionError("no trial completed"));
  int completed = 0, pruned = 0;
  for (const auto& t : *trials) {
    completed += t.state == hpo::TrialState::kComplete;
    pruned += t.state == hpo::TrialState::kPruned;
  }
  if (auto st = hpo::WriteStudyReport(out, *space, *trials, hpo::Direction::kMinimize); !st.ok()) {
    return cli::Fail(kProgram, st);
  }
  // Export the best trial: copy the classifiers it exported when it finished.
  const hpo::FrozenTrial& b = **best;
  const nlohmann::json best_params = hpo::ParamsToJson(*space, b.params);
  const std::string best_dir =
      models::JoinPath(study_dir, absl::StrCat("trial_", b.number, "/classifiers"));
  auto manifest = models::ReadFileToString(models::JoinPath(best_dir, "manifest.json"));
  if (!manifest.ok()) return cli::Fail(kProgram, manifest.status());
  // OUT is shared with the study (other processes may still run trials in OUT/study), so the export
  // is not swapped in as a directory: the manifest goes first and comes back last. A kill leaves
  // the previous export, the complete new one, or no manifest.json (loaders refuse the directory).
  if (::unlink(models::JoinPath(out, "manifest.json").c_str()) == 0) {
    if (auto st = base::SyncPath(out); !st.ok()) return cli::Fail(kProgram, st);
  } else if (errno != ENOENT) {
    return cli::Fail(kProgram, absl::InternalError(absl::StrCat(
                                   out, "/manifest.json: cannot remove: ", std::strerror(errno))));
  }
  for (size_t p = 0; p + 1 < precisions->size(); ++p) {
    const std::string f =
        absl::StrCat("classifier_", (*precisions)[p], "_", (*precisions)[p + 1], ".safetensors");
    auto bytes = models::ReadFileToString(models::JoinPath(best_dir, f));
    if (!bytes.ok()) return cli::Fail(kProgram, bytes.status());
    if (auto st = base::WriteFileAtomically(models::JoinPath(out, f), *bytes); !st.ok())
      return cli::Fail(kProgram, st);
  }
  if (auto st = base::WriteFileAtomically(models::JoinPath(out, "manifest.json"), *manifest);
      !st.ok()) {
    return cli::Fail(kProgram, st);
  }
  std::fprintf(stderr, "\n%s",
               hpo::Leaderboard(*space, *trials, hpo::Direction::kMinimize, 10).c_str());
  std::fprintf(
      stderr,
      "best trial %lld: validation loss %.5f, %s; classifiers in %s; report in %s/trials.csv, "
      "history.svg, importance.txt\n",
      static_cast<long long>(b.number), *b.value, best_params.dump().c_str(), out.c_str(),
      out.c_str());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << nlohmann::json{{"completed", completed},
                                {"pruned", pruned},
                                {"trials", trials->size()},
                                {"best_trial", b.number},
                                {"best_value", *b.value},
                                {"best_params", best_params},
                                {"out", out},
                                {"study", study_dir}}
                     .dump()
              << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::InitUsage(
      absl::StrCat("pmpd-hypertune --data FILE.h5 --precisions 4,3 --trials 100 [--jobs N] "
                   "[--study DIR] [--space FILE.json]\n"
                   "               [--sampler tpe|random] [--pruner median|asha|none] [--seed S] "
                   "--out DIR [--json]\n\n"
                   "Searches pmpd-train's hyperparameters with our TPE (hpo/): objective = mean "
                   "best validation loss over the\n"
                   "pairs. Kill it at any time and rerun the same command: the study (journal in "
                   "--study) continues without\n"
                   "losing or repeating trials. The built-in space:\n",
                   kDefaultSpace),
      {{"Data", {"data", "precisions", "label_tolerance", "candidate_steps"}},
       {"Model", {"balance", "prompt_length_input"}},
       {"Search",
        {"trials", "jobs", "study", "space", "sampler", "pruner", "seed", "enqueue_defaults",
         "device"}},
       {"Output", {"out", "json"}}});
  cli::ParseFlags(argc, argv);
  return cli::RunGuarded("pmpd-hypertune", [] { return Run(); });
}
