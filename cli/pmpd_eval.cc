// pmpd-eval: quality against average bit-width for PMPD and its baselines on a task.
#include <cstdio>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "base/atomic_file.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
#include "eval/evaluation.h"
#include "inference/load_engine.h"
#include "models/chat_template.h"
#include "models/file_util.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"

ABSL_FLAG(std::string, model, "", "Any-precision model directory (see pmpd-quantize). Required.");
ABSL_FLAG(std::string, task, "", "tinystories, c4, cnn_dm, dialogsum or iwslt. Required.");
ABSL_FLAG(int, num_prompts, 100,
          "Test prompts (the first N usable examples of the task). Was --n (still accepted).");
ABSL_FLAG(int, max_new_tokens, 128, "Tokens generated per prompt (greedy).");
ABSL_FLAG(
    std::string, methods, "high,low,static",
    "Comma-separated: high (uniform first precision), low (uniform last), uniform (one row per "
    "precision "
    "from the first to the last, uniform-<p>), static (PMPD-Static), learned (PMPD-Learned, needs "
    "--classifier), learned-sweep (PMPD-Learned at every switch quantile of the calibration grid, "
    "rows "
    "learned-q<q>: its quality-vs-bits curve).");
ABSL_FLAG(std::string, classifier, "",
          "Learned method: directory of classifiers from pmpd-train (manifest.json), or of the "
          "PMPD reference's "
          "classifier_<hi>_<lo>.pt files.");
ABSL_FLAG(bool, force, false,
          "Learned method: use classifiers whose manifest.json records another model's "
          "fingerprint instead of refusing them.");
ABSL_FLAG(std::string, precisions, "4,3", "Precisions high to low, e.g. 4,3 or 4,3,2.");
ABSL_FLAG(std::string, switch_steps, "",
          "Static method: switch steps (one per adjacent pair), unless calibrated.");
ABSL_FLAG(int, prefill_precision, 0,
          "Static method: prefill precision (default: the first precision).");
ABSL_FLAG(bool, calibrate_static, false,
          "Choose the static method's prefill precision and switch steps on a calibration split "
          "(the --num-calib-prompts "
          "examples after the test ones): least average bits with quality >= uniform-high quality "
          "- --epsilon.");
ABSL_FLAG(double, switch_quantile, 0,
          "Learned method: 0 switches at each classifier's most probable step; q in (0, 1) at the "
          "earliest step "
          "that is late enough with probability q (smaller: fewer bits), unless calibrated.");
ABSL_FLAG(
    std::string, calibrate_learned, "",
    "Choose the learned method's switch quantile on the calibration split: quality (least average "
    "bits with "
    "quality >= uniform-high quality - --epsilon, the static rule) or static-bits (best quality "
    "within the "
    "calibrated static schedule's average bits on the same prompts, the grid 0.1..0.9 refined by "
    "three bisections around that budget; needs --calibrate-static).");
ABSL_FLAG(int, num_calib_prompts, 50,
          "Calibration prompts for --calibrate-static and --calibrate-learned. Was --calib-n "
          "(still accepted).");
ABSL_FLAG(double, epsilon, 1.0,
          "Allowed quality drop for --calibrate-static and --calibrate-learned quality (Rouge-L "
          "x100 or BLEU "
          "points).");
ABSL_FLAG(std::string, reference, "dataset",
          "dataset: the task's references; model: the greedy output of --reference-model (right "
          "for small models); "
          "both: the references, plus a second score against the model's output (calibration uses "
          "the first).");
ABSL_FLAG(std::string, reference_model, "",
          "Model whose output is the reference with --reference model (default: --model at its "
          "parent precision).");
ABSL_FLAG(std::string, shared_dir, "",
          "Shared assets (default: $PMPD_SHARED_DIR, else ../shared).");
ABSL_FLAG(std::string, data, "", "Data file overriding the task's default file.");
ABSL_FLAG(std::string, out, "", "Directory for results.csv, results.json and quality_vs_bits.svg.");
ABSL_FLAG(bool, json, false, "Print one JSON object with the rows.");
ABSL_FLAG(std::string, chat_template, "auto",
          "How prompts are presented: auto (the model's chat template when it has one, else "
          "none), none (plain text), chatml, llama2 or vicuna. With a template the task prompt is "
          "the user message and answers end at the end of the assistant's turn.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu (the reference engine), cuda (the CUDA engine, for --model and --reference-model "
          "alike; plain "
          "checkpoints run there with fp16 projections; builds with nvcc only) or auto (cuda when "
          "a GPU is "
          "visible).");

namespace {
constexpr char kProgram[] = "pmpd-eval";
using namespace pmpd;

// A progress callback for one of eval's loops (prompts done of total) on stderr: a cli::Progress,
// made at the first call, when the total is known.
std::function<void(int, int)> ProgressFor(const std::string& label) {
  auto progress = std::make_shared<std::unique_ptr<cli::Progress>>();
  return [progress, label](int done, int total) {
    if (!*progress) *progress = std::make_unique<cli::Progress>(label, total, "prompts");
    (*progress)->Update(done);
  };
}

// The methods' flags checked on their own and against the methods chosen, before any file is
// read: a flag that no chosen method uses is an error naming both (it was silently ignored).
absl::Status CheckMethodFlags(const std::vector<std::string>& methods,
                              const std::vector<int>& precisions) {
  auto has = [&](const char* name) {
    return std::find(methods.begin(), methods.end(), name) != methods.end();
  };
  for (const auto& m : methods) {
    if ((m == "learned" || m == "learned-sweep") && absl::GetFlag(FLAGS_classifier).empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("method \"", m, "\" needs --classifier DIR (classifiers from pmpd-train)"));
    }
    if (m != "high" && m != "low" && m != "static" && m != "learned" && m != "learned-sweep" &&
        m != "uniform") {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown method \"", m, "\"; known: high, low, uniform, static, learned, learned-sweep"));
    }
  }
  if (auto st =
          scheduler::CheckSwitchQuantile(absl::GetFlag(FLAGS_switch_quantile), "--switch-quantile");
      !st.ok())
    return st;
  const std::string learned_objective = absl::GetFlag(FLAGS_calibrate_learned);
  if (!learned_objective.empty() && learned_objective != "quality" &&
      learned_objective != "static-bits") {
    return absl::InvalidArgumentError(absl::StrCat("--calibrate-learned \"", learned_objective,
                                                   "\": use quality or static-bits"));
  }
  const std::string reference = absl::GetFlag(FLAGS_reference);
  if (reference != "dataset" && reference != "model" && reference != "both") {
    return absl::InvalidArgumentError("--reference must be dataset, model or both");
  }
  const bool calibrate_static = absl::GetFlag(FLAGS_calibrate_static);
  const bool calibrate_learned = !learned_objective.empty();
  const bool learned_any = has("learned") || has("learned-sweep");
  const std::string chosen = absl::StrCat("--methods ", absl::GetFlag(FLAGS_methods));
  auto ignored = [](absl::string_view flag, absl::string_view other, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " has no effect with ", other, ": ", why));
  };
  for (const char* flag : {"switch_steps", "prefill_precision"}) {
    const std::string dashed = flag[0] == 's' ? "--switch-steps" : "--prefill-precision";
    if (!cli::FlagGiven(flag)) continue;
    if (!has("static")) return ignored(dashed, chosen, "it is for the static method");
    if (calibrate_static) {
      return ignored(dashed, "--calibrate-static", "the calibration chooses the static schedule");
    }
  }
  if (calibrate_static && !has("static"))
    return ignored("--calibrate-static", chosen, "it is for the static method");
  for (const char* flag : {"--classifier", "--force"}) {
    if (cli::FlagGiven(flag + 2) && !learned_any) {
      return ignored(flag, chosen, "it is for the learned and learned-sweep methods");
    }
  }
  if (calibrate_learned && !has("learned"))
    return ignored("--calibrate-learned", chosen, "it is for the learned method");
  if (cli::FlagGiven("switch_quantile")) {
    if (!has("learned"))
      return ignored("--switch-quantile", chosen, "it is for the learned method");
    if (calibrate_learned) {
      return ignored("--switch-quantile", "--calibrate-learned",
                     "the calibration chooses the switch quantile");
    }
  }
  const bool calibrating = calibrate_static || calibrate_learned;
  for (const char* flag : {"--num-calib-prompts", "--epsilon"}) {
    const std::string name = absl::StrReplaceAll(flag + 2, {{"-", "_"}});
    if (cli::FlagGiven(name) && !calibrating) {
      return ignored(flag, chosen, "it is for --calibrate-static and --calibrate-learned");
    }
  }
  if (cli::FlagGiven("reference_model") && reference == "dataset") {
    return ignored("--reference-model", "--reference dataset",
                   "it is for --reference model or both");
  }
  if (learned_objective == "static-bits" && !(calibrate_static && has("static"))) {
    return absl::InvalidArgumentError(
        "--calibrate-learned static-bits needs --calibrate-static and the static method");
  }
  if (has("static") && !calibrate_static && precisions.size() > 1 &&
      absl::GetFlag(FLAGS_switch_steps).empty()) {
    return absl::InvalidArgumentError(
        "the static method needs --switch-steps (one per adjacent pair of --precisions) or "
        "--calibrate-static");
  }
  if (has("static") && !calibrate_static) {
    auto steps = scheduler::ParseIntList(absl::GetFlag(FLAGS_switch_steps), "--switch-steps");
    if (!steps.ok()) return steps.status();
    if (auto made = scheduler::MakeStaticScheduler(precisions, *steps); !made.ok())
      return made.status();
  }
  return absl::OkStatus();
}

int Run() {
  const std::string model_dir = absl::GetFlag(FLAGS_model), task_name = absl::GetFlag(FLAGS_task);
  if (model_dir.empty() || task_name.empty()) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError("--model and --task are required (see --help)"));
  }
  std::string shared = absl::GetFlag(FLAGS_shared_dir);
  if (shared.empty())
    shared = std::getenv("PMPD_SHARED_DIR") ? std::getenv("PMPD_SHARED_DIR") : "../shared";
  const int n = absl::GetFlag(FLAGS_num_prompts), max_new = absl::GetFlag(FLAGS_max_new_tokens);
  if (n < 1 || absl::GetFlag(FLAGS_num_calib_prompts) < 1 || max_new < 1) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError(
                         "--num-prompts, --num-calib-prompts and --max-new-tokens must be >= 1"));
  }
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device)); !st.ok())
    return cli::Fail(kProgram, st);
  const std::string chat_choice = absl::GetFlag(FLAGS_chat_template);
  if (chat_choice != "auto" && chat_choice != "none") {
    if (auto t = models::ChatTemplate::FromName(chat_choice); !t.ok())
      return cli::Fail(kProgram, absl::InvalidArgumentError(t.status().message()));
  }
  auto precisions =
      scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 1, "--precisions");
  if (!precisions.ok()) return cli::Fail(kProgram, precisions.status());
  std::vector<std::string> methods =
      absl::StrSplit(absl::GetFlag(FLAGS_methods), ',', absl::SkipEmpty());
  auto has_method = [&](const std::string& name) {
    return std::find(methods.begin(), methods.end(), name) != methods.end();
  };
  if (auto st = CheckMethodFlags(methods, *precisions); !st.ok()) return cli::Fail(kProgram, st);
  const double quantile = absl::GetFlag(FLAGS_switch_quantile);
  const std::string learned_objective = absl::GetFlag(FLAGS_calibrate_learned);
  const std::string reference = absl::GetFlag(FLAGS_reference);
  if (!models::FileExists(model_dir)) {
    return cli::Fail(kProgram, absl::NotFoundError(absl::StrCat("--model ", model_dir,
                                                                ": no such file or directory")));
  }
  // Classifiers exported for another model are refused before anything loads (one fingerprint of
  // the model, not one per method).
  if (has_method("learned") || has_method("learned-sweep")) {
    if (auto st = scheduler::CheckClassifierModel(absl::GetFlag(FLAGS_classifier), model_dir,
                                                  absl::GetFlag(FLAGS_force));
        !st.ok())
      return cli::Fail(kProgram, st);
  }
  auto task = eval::LoadEvalTask(task_name, shared, absl::GetFlag(FLAGS_data), 0, n);
  if (!task.ok()) return cli::Fail(kProgram, task.status());
  const bool calibrate = absl::GetFlag(FLAGS_calibrate_static) && has_method("static");
  const bool calibrate_learned = !learned_objective.empty() && has_method("learned");
  absl::StatusOr<eval::EvalTask> calib_task = absl::NotFoundError("");
  if (calibrate || calibrate_learned) {
    calib_task = eval::LoadEvalTask(task_name, shared, absl::GetFlag(FLAGS_data), n,
                                    absl::GetFlag(FLAGS_num_calib_prompts));
    if (!calib_task.ok()) return cli::Fail(kProgram, calib_task.status());
  }
  auto tok = models::Tokenizer::Load(model_dir);
  if (!tok.ok()) return cli::Fail(kProgram, tok.status());
  // The prompt format, fixed before the model loads so a bad choice fails fast.
  std::optional<models::ChatTemplate> chat;
  if (chat_choice != "none" && !(chat_choice == "auto" && (*tok)->chat_template().empty())) {
    auto t = models::ChatTemplate::ForModel(chat_choice, **tok);
    if (!t.ok()) return cli::Fail(kProgram, t.status());
    chat = *t;
  }
  auto device = inference::ParseDevice(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return cli::Fail(kProgram, device.status());
  auto model = inference::LoadEngine(model_dir, *device);
  if (!model.ok()) return cli::Fail(kProgram, model.status());
  if (auto st = scheduler::CheckPrecisionRange((*model)->min_precision(), (*model)->max_precision(),
                                               *precisions, model_dir);
      !st.ok()) {
    return cli::Fail(kProgram, st);
  }
  std::fprintf(stderr, "%s: %zu test prompts from %s (device %s, chat template %s)\n",
               task_name.c_str(), task->examples.size(), task->data_path.c_str(),
               inference::DeviceName((*model)->device()).c_str(), chat ? chat->name() : "none");

  // References: the data set's, or a model's greedy outputs on the same (fitted) prompts. The
  // reference model is loaded once, for the test and the calibration split alike.
  std::unique_ptr<inference::Engine> ref_model;
  auto refs_for = [&](const eval::EvalTask& t, const eval::EvalPrompts& prompts,
                      bool from_model =
                          false) -> absl::StatusOr<std::vector<std::vector<std::string>>> {
    std::vector<std::vector<std::string>> refs;
    if (!from_model && reference != "model") {
      for (const auto& ex : t.examples) refs.push_back(ex.references);
      return refs;
    }
    inference::Engine* m = model->get();
    const std::string ref_dir = absl::GetFlag(FLAGS_reference_model);
    if (!ref_dir.empty()) {
      if (!ref_model) {
        auto loaded = inference::LoadEngine(ref_dir, *device);
        if (!loaded.ok()) return loaded.status();
        ref_model = std::move(*loaded);
      }
      m = ref_model.get();
    }
    // --model itself runs at its parent precision; a reference model at its own.
    auto outs =
        eval::GreedyOutputs(*m, **tok, prompts, max_new, ref_dir.empty() ? m->max_precision() : 0);
    if (!outs.ok()) return outs.status();
    for (auto& o : *outs) refs.push_back({o});
    return refs;
  };
  const int ctx = (*model)->max_context();
  const models::ChatTemplate* chat_ptr = chat ? &*chat : nullptr;
  const auto prompts = eval::FitPrompts(*task, **tok, ctx, max_new, chat_ptr);
  auto refs = refs_for(*task, prompts);
  if (!refs.ok()) return cli::Fail(kProgram, refs.status());

  // --reference both: the data set's references above; the model's own outputs as the second.
  absl::StatusOr<std::vector<std::vector<std::string>>> model_refs =
      std::vector<std::vector<std::string>>();
  if (reference == "both") {
    model_refs = refs_for(*task, prompts, /*from_model=*/true);
    if (!model_refs.ok()) return cli::Fail(kProgram, model_refs.status());
  }

  eval::EvalMethod static_method{
      "static", absl::GetFlag(FLAGS_prefill_precision), *precisions, {}, ""};
  nlohmann::json calibration, learned_calibration;
  eval::EvalPrompts calib_prompts;
  std::vector<std::vector<std::string>> calib_refs;
  if (calibrate || calibrate_learned) {
    calib_prompts = eval::FitPrompts(*calib_task, **tok, ctx, max_new, chat_ptr);
    auto r = refs_for(*calib_task, calib_prompts);
    if (!r.ok()) return cli::Fail(kProgram, r.status());
    calib_refs = std::move(*r);
  }
  double static_calib_bits = -1, calib_reference_quality = -1;
  if (calibrate) {
    auto cal = eval::CalibrateStatic(**model, **tok, *precisions, calib_prompts, calib_refs,
                                     task->metric, max_new, absl::GetFlag(FLAGS_epsilon),
                                     ProgressFor("calibrating static schedule"));
    if (!cal.ok()) return cli::Fail(kProgram, cal.status());
    static_method = cal->chosen;
    calib_reference_quality = cal->reference_quality;
    static_calib_bits =
        cal->chosen_row.examples > 0 ? cal->chosen_row.avg_bits : precisions->front();
    std::fprintf(stderr, "calibration (%zu prompts): uniform-high quality %.2f; chose %s\n",
                 calib_prompts.size(), cal->reference_quality, static_method.Describe().c_str());
    calibration = {{"prompts", calib_prompts.size()},
                   {"reference_quality", cal->reference_quality},
                   {"epsilon", absl::GetFlag(FLAGS_epsilon)},
                   {"prefill_precision", static_method.prefill_precision},
                   {"switch_steps", static_method.switch_steps}};
    for (const auto& c : cal->candidates) {
      calibration["candidates"].push_back(
          {{"schedule", c.schedule}, {"avg_bits", c.avg_bits}, {"quality", c.quality}});
    }
  } else if (std::find(methods.begin(), methods.end(), "static") != methods.end()) {
    auto steps = scheduler::ParseIntList(absl::GetFlag(FLAGS_switch_steps), "--switch-steps");
    if (!steps.ok()) return cli::Fail(kProgram, steps.status());
    if (auto st = scheduler::MakeStaticScheduler(*precisions, *steps); !st.ok())
      return cli::Fail(kProgram, st.status());
    static_method.switch_steps = *steps;
  }
  if (static_method.prefill_precision == 0) static_method.prefill_precision = precisions->front();
  eval::EvalMethod learned_method{
      "learned", precisions->front(), *precisions, {}, absl::GetFlag(FLAGS_classifier), quantile};
  if (calibrate_learned) {
    const double budget = learned_objective == "static-bits" ? static_calib_bits : -1;
    auto cal = eval::CalibrateLearned(**model, **tok, *precisions, absl::GetFlag(FLAGS_classifier),
                                      calib_prompts, calib_refs, task->metric, max_new,
                                      absl::GetFlag(FLAGS_epsilon), budget, calib_reference_quality,
                                      ProgressFor("calibrating learned scheduler"));
    if (!cal.ok()) return cli::Fail(kProgram, cal.status());
    learned_method = cal->chosen;
    std::fprintf(stderr, "learned calibration (%zu prompts, %s): chose switch quantile %s\n",
                 calib_prompts.size(), learned_objective.c_str(),
                 eval::FormatQuantile(learned_method.switch_quantile).c_str());
    learned_calibration = {{"prompts", calib_prompts.size()},
                           {"objective", learned_objective},
                           {"reference_quality", cal->reference_quality},
                           {"epsilon", absl::GetFlag(FLAGS_epsilon)},
                           {"switch_quantile", learned_method.switch_quantile}};
    if (budget >= 0) learned_calibration["max_avg_bits"] = budget;
    for (size_t i = 0; i < cal->candidates.size(); ++i) {
      const auto& c = cal->candidates[i];
      learned_calibration["candidates"].push_back({{"schedule", c.schedule},
                                                   {"switch_quantile", cal->candidate_quantiles[i]},
                                                   {"avg_bits", c.avg_bits},
                                                   {"quality", c.quality}});
    }
  }

  // "uniform" is one row per precision from the highest to the lowest of --precisions.
  std::vector<std::string> expanded;
  for (const auto& m : methods) {
    if (m == "learned-sweep") {
      for (double q : eval::kLearnedQuantileGrid) {
        if (q > 0) expanded.push_back(absl::StrFormat("learned-q%.1f", q));
      }
      continue;
    }
    if (m != "uniform") {
      expanded.push_back(m);
      continue;
    }
    for (int p = precisions->front(); p >= precisions->back(); --p)
      expanded.push_back(absl::StrCat("uniform-", p));
  }
  std::vector<eval::EvalRow> rows;
  for (const auto& m : expanded) {
    eval::EvalMethod method = static_method;
    if (absl::StartsWith(m, "uniform-")) {
      const int p = std::stoi(m.substr(8));
      method = {m, p, {p}, {}, ""};
    }
    if (m == "high") method = {"high", precisions->front(), {precisions->front()}, {}, ""};
    if (m == "low") method = {"low", precisions->back(), {precisions->back()}, {}, ""};
    if (m == "learned") method = learned_method;
    if (absl::StartsWith(m, "learned-q")) {
      method = {m,
                precisions->front(),
                *precisions,
                {},
                absl::GetFlag(FLAGS_classifier),
                std::stod(m.substr(9))};
    }
    auto row = eval::RunMethod(**model, **tok, method, prompts, *refs, task->metric, max_new,
                               ProgressFor(m));
    if (!row.ok()) return cli::Fail(kProgram, row.status());
    if (reference == "both") {
      eval::QualityScores vs_model = eval::Score(task->metric, row->outputs, *model_refs);
      row->quality_vs_model = vs_model.quality;
      row->example_quality_vs_model = std::move(vs_model.per_example);
    }
    rows.push_back(std::move(*row));
  }
  const std::string qname = task->metric == eval::QualityMetric::kRougeL ? "rouge_l" : "bleu";
  const std::string qtitle = task->metric == eval::QualityMetric::kRougeL ? "Rouge-L" : "BLEU";
  nlohmann::json j = {{"model", model_dir},
                      {"task", task_name},
                      {"examples", prompts.size()},
                      {"max_new_tokens", max_new},
                      {"reference", reference},
                      {"precisions", *precisions},
                      {"chat_template", prompts.chat_template}};
  if (!calibration.is_null()) j["calibration"] = calibration;
  if (!learned_calibration.is_null()) j["learned_calibration"] = learned_calibration;
  // Every method against PMPD-static on the same prompts (when both ran): paired differences with
  // their standard errors, so a gap can be told from noise.
  const eval::EvalRow* static_row = nullptr;
  for (const auto& r : rows) {
    if (r.method == "static") static_row = &r;
  }
  auto paired_json = [](const eval::PairedDifference& d) {
    return d.n == 0
               ? nlohmann::json()
               : nlohmann::json{
                     {"mean_difference", d.mean}, {"standard_error", d.standard_error}, {"n", d.n}};
  };
  for (const auto& r : rows) {
    nlohmann::json per_example = {{"avg_bits", r.example_bits}};
    if (!r.example_quality.empty()) per_example[qname] = r.example_quality;
    if (!r.example_quality_vs_model.empty())
      per_example[qname + "_vs_model"] = r.example_quality_vs_model;
    nlohmann::json vs_static;
    if (static_row != nullptr && &r != static_row) {
      vs_static = {
          {"avg_bits", paired_json(eval::Paired(r.example_bits, static_row->example_bits))}};
      if (!r.example_quality.empty())
        vs_static[qname] =
            paired_json(eval::Paired(r.example_quality, static_row->example_quality));
      if (!r.example_quality_vs_model.empty()) {
        vs_static[qname + "_vs_model"] = paired_json(
            eval::Paired(r.example_quality_vs_model, static_row->example_quality_vs_model));
      }
    }
    j["rows"].push_back(
        {{"method", r.method},
         {"per_example", per_example},
         {"paired_vs_static", vs_static},
         {"schedule", r.schedule},
         {"avg_bits", r.avg_bits},
         {qname, r.quality},
         {qname + "_vs_model",
          r.quality_vs_model >= 0 ? nlohmann::json(r.quality_vs_model) : nlohmann::json()},
         {"tokens_per_s", r.tokens_per_s},
         {"scheduler_us_per_prompt", r.scheduler_us_per_prompt},
         {"decode_us_per_step", r.decode_us_per_step},
         {"examples", r.examples}});
  }
  const bool both = reference == "both";
  // With --json stdout carries the JSON object only; the tables go to stderr for whoever watches.
  std::FILE* const table = absl::GetFlag(FLAGS_json) ? stderr : stdout;
  std::fprintf(
      table,
      "| method | schedule | avg bits | %s%s | tokens/s | scheduler us/prompt | decode us/step |\n"
      "|---|---|---|---|%s---|---|---|\n",
      qtitle.c_str(), both ? absl::StrCat(" vs references | ", qtitle, " vs model").c_str() : "",
      both ? "---|" : "");
  for (const auto& r : rows) {
    std::fprintf(table, "| %s | %s | %.3f | %.2f%s | %.0f | %.1f | %.1f |\n", r.method.c_str(),
                 r.schedule.c_str(), r.avg_bits, r.quality,
                 both ? absl::StrFormat(" | %.2f", r.quality_vs_model).c_str() : "", r.tokens_per_s,
                 r.scheduler_us_per_prompt, r.decode_us_per_step);
  }
  if (static_row != nullptr && task->metric == eval::QualityMetric::kRougeL) {
    std::fprintf(table,
                 "\nPaired differences from PMPD-static on the same %zu prompts (mean +- standard "
                 "error):\n| method | avg bits | %s%s |\n|---|---|---|%s\n",
                 prompts.size(), qtitle.c_str(),
                 both ? absl::StrCat(" | ", qtitle, " vs model").c_str() : "", both ? "---|" : "");
    for (const auto& r : rows) {
      if (&r == static_row) continue;
      const auto b = eval::Paired(r.example_bits, static_row->example_bits);
      const auto q = eval::Paired(r.example_quality, static_row->example_quality);
      const auto m = eval::Paired(r.example_quality_vs_model, static_row->example_quality_vs_model);
      std::fprintf(
          table, "| %s | %+.3f | %+.2f +- %.2f%s |\n", r.method.c_str(), b.mean, q.mean,
          q.standard_error,
          both ? absl::StrFormat(" | %+.2f +- %.2f", m.mean, m.standard_error).c_str() : "");
    }
  }
  const std::string out = absl::GetFlag(FLAGS_out);
  if (!out.empty()) {
    if (auto st = models::MakeDirs(out); !st.ok()) return cli::Fail(kProgram, st);
    if (auto st = eval::WriteEvalCsv(models::JoinPath(out, "results.csv"), rows); !st.ok()) {
      return cli::Fail(kProgram, st);
    }
    if (auto st = base::WriteFileAtomically(models::JoinPath(out, "results.json"), j.dump(2));
        !st.ok()) {
      return cli::Fail(kProgram, st);
    }
    if (auto st = eval::WriteEvalSvg(
            models::JoinPath(out, "quality_vs_bits.svg"),
            absl::StrCat(task_name, ": ", qtitle, " vs average bits (", prompts.size(),
                         " prompts, reference: ", reference, ")"),
            qtitle, rows);
        !st.ok()) {
      return cli::Fail(kProgram, st);
    }
    std::fprintf(stderr, "wrote %s/results.csv, results.json, quality_vs_bits.svg\n", out.c_str());
  }
  if (absl::GetFlag(FLAGS_json)) std::cout << j.dump() << "\n";
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  cli::InitUsage(
      "Evaluate PMPD against uniform-precision baselines: average bits, quality (Rouge-L or BLEU), "
      "tokens/s.\n\n"
      "Example:\n"
      "  pmpd-eval --model /tmp/s260k-ap --task tinystories --num-prompts 100 --precisions 4,3 "
      "--methods high,low,static \\\n"
      "      --calibrate-static --reference model --reference-model ../shared/models/stories260K "
      "--out /tmp/eval",
      {{"Model", {"model", "device", "chat_template"}},
       {"Task", {"task", "num_prompts", "max_new_tokens", "data", "shared_dir"}},
       {"Reference", {"reference", "reference_model"}},
       {"Methods",
        {"methods", "precisions", "switch_steps", "prefill_precision", "classifier", "force",
         "switch_quantile"}},
       {"Calibration", {"calibrate_static", "calibrate_learned", "num_calib_prompts", "epsilon"}},
       {"Output", {"out", "json"}}});
  cli::ParseFlags(argc, argv);
  return cli::RunGuarded("pmpd-eval", [] { return Run(); });
}
