// pmpd-generate: stream a continuation of a prompt from a Llama-family model.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "inference/generator.h"
#include "inference/load_engine.h"
#include "inference/sampler.h"
#include "models/chat_template.h"
#include "models/file_util.h"
#include "models/tokenizer.h"
#include "scheduler_runtime/kv_classifier.h"
#include "scheduler_runtime/precision_scheduler.h"
#include "scheduler_runtime/scheduled_generation.h"

ABSL_FLAG(std::string, model, "",
          "Model directory: Hugging Face Llama layout (config.json, *.safetensors, "
          "tokenizer.model). Required.");
ABSL_FLAG(
    std::string, tokenizer, "",
    "tokenizer.model, tokenizer.json, a .gguf file or a directory holding one (default: MODEL).");
ABSL_FLAG(std::string, prompt, "",
          "Prompt text; BOS is prepended as the tokenizer does (with --chat: the user's "
          "message). \"-\" reads it from stdin. Required unless --prompt-file.");
ABSL_FLAG(std::string, prompt_file, "",
          "Read the prompt from this file (\"-\": stdin); one trailing newline is dropped. "
          "Excludes --prompt.");
ABSL_FLAG(int, max_new_tokens, 64,
          "Most tokens to generate (stops earlier at EOS or the context end).");
ABSL_FLAG(double, temperature, 0.0,
          "Sampling temperature; 0 means greedy (argmax), where --top-k and --top-p are refused "
          "(they would be ignored).");
ABSL_FLAG(int, top_k, 0, "Keep only the K most likely tokens before sampling; 0 disables.");
ABSL_FLAG(double, top_p, 1.0,
          "Nucleus sampling: keep the smallest set of tokens with probability >= P; 1 disables.");
ABSL_FLAG(uint64_t, seed, 0,
          "Random seed for sampling; the same seed gives the same text. Accepted with greedy "
          "decoding, where it changes nothing.");
ABSL_FLAG(bool, json, false,
          "Print one JSON object (prompt_ids, new_ids, text, timing) instead of streaming text.");
ABSL_FLAG(int, precision, 0,
          "Any-precision models: weight bits to decode at (seed..parent precision of the "
          "checkpoint); 0 = the parent precision.");
ABSL_FLAG(std::string, precisions, "",
          "PMPD: decode precisions, high to low, e.g. 4,3,2 (any-precision models).");
ABSL_FLAG(std::string, scheduler, "static",
          "PMPD scheduler: static (switch after --switch-steps) or learned (classifiers read the "
          "prefill KV cache and "
          "predict the switch steps once per prompt; needs --classifier).");
ABSL_FLAG(std::string, classifier, "",
          "Learned scheduler: directory from pmpd-train (manifest.json + "
          "classifier_<hi>_<lo>.safetensors), or of the "
          "PMPD reference's classifier_<hi>_<lo>.pt files.");
ABSL_FLAG(bool, force, false,
          "Learned scheduler: use classifiers whose manifest.json records another model's "
          "fingerprint (trained on labels from another checkpoint) instead of refusing them.");
ABSL_FLAG(std::string, switch_steps, "",
          "Static scheduler: one cumulative step per adjacent pair, e.g. 16,64: "
          "4 bits for tokens [0,16), 3 for [16,64), 2 after.");
ABSL_FLAG(int, prefill_precision, 0,
          "PMPD: precision of the prompt prefill (default: the first of --precisions).");
ABSL_FLAG(std::string, color, "auto",
          "Color tokens by precision: auto (when stdout is a terminal, unless NO_COLOR is set or "
          "TERM is dumb), always, never.");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating after EOS (for benchmarks).");
ABSL_FLAG(bool, chat, false,
          "Chat: --prompt is a user message; the chat template is applied and generation stops "
          "at the end of the assistant's turn.");
ABSL_FLAG(std::string, system, "",
          "With --chat: the system message (default: the template's own, if any).");
ABSL_FLAG(std::string, chat_template, "auto",
          "With --chat: auto (recognise the model's template: GGUF tokenizer.chat_template or "
          "tokenizer_config.json), chatml, llama2 or vicuna.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu (the reference engine on LibTorch), cuda (our CUDA engine: any-precision or fp16 "
          "weights, CUDA "
          "graphs; builds with nvcc only) or auto (cuda when a GPU is visible).");

namespace {

constexpr char kProgram[] = "pmpd-generate";

// One colour per precision, readable on light and dark terminals alike: xterm-256 colours of
// middle luminance (WCAG relative luminance 0.14-0.23), each with a contrast ratio of at least
// 3.8:1 against a black and against a white background. The basic ANSI colours fail one side:
// white and bright yellow vanish on white, blue is hard to read on black. Cool to warm as bits
// drop; neighbouring precisions get unlike hues.
const std::map<int, const char*> kColors = {
    {8, "\033[38;5;32m"},   // blue       (0, 135, 215)
    {7, "\033[38;5;30m"},   // teal       (0, 135, 135)
    {6, "\033[38;5;98m"},   // purple     (135, 95, 215)
    {5, "\033[38;5;28m"},   // green      (0, 135, 0)
    {4, "\033[38;5;166m"},  // orange     (215, 95, 0)
    {3, "\033[38;5;133m"},  // magenta    (175, 95, 175)
    {2, "\033[38;5;160m"},  // red        (215, 0, 0)
};

absl::Status InvalidFlags(absl::string_view message) { return absl::InvalidArgumentError(message); }

// Every flag on its own and against the others, before anything is read or loaded: a bad value
// must not cost a model load (issue 16). Fills `sampling`.
absl::Status CheckFlags(pmpd::inference::SamplingOptions* sampling) {
  using namespace pmpd;
  if (absl::GetFlag(FLAGS_model).empty()) return InvalidFlags("--model is required (see --help)");
  const bool have_prompt = cli::FlagGiven("prompt") || !absl::GetFlag(FLAGS_prompt).empty();
  if (have_prompt && !absl::GetFlag(FLAGS_prompt_file).empty()) {
    return InvalidFlags("--prompt and --prompt-file exclude each other");
  }
  if (absl::GetFlag(FLAGS_prompt).empty() && absl::GetFlag(FLAGS_prompt_file).empty()) {
    return InvalidFlags("--prompt is required (or --prompt-file; see --help)");
  }
  if (absl::GetFlag(FLAGS_max_new_tokens) < 1) {
    return InvalidFlags(
        absl::StrCat("--max-new-tokens must be >= 1, got ", absl::GetFlag(FLAGS_max_new_tokens)));
  }
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device)); !st.ok()) return st;
  sampling->temperature = static_cast<float>(absl::GetFlag(FLAGS_temperature));
  sampling->top_k = absl::GetFlag(FLAGS_top_k);
  sampling->top_p = static_cast<float>(absl::GetFlag(FLAGS_top_p));
  sampling->seed = absl::GetFlag(FLAGS_seed);
  if (auto st = inference::ValidateSamplingOptions(*sampling); !st.ok()) return st;
  // Greedy decoding ignores the sampling filters: a --top-k or --top-p there is a mistake (a
  // forgotten --temperature). --seed is harmless and scripts often fix it for every run: allowed.
  if (sampling->temperature == 0.f) {
    for (const char* flag : {"top_k", "top_p"}) {
      if (cli::FlagGiven(flag)) {
        return InvalidFlags(absl::StrCat("--", flag[4] == 'k' ? "top-k" : "top-p",
                                         " has no effect with --temperature 0 (greedy); set a "
                                         "temperature > 0 to sample"));
      }
    }
  }
  if (absl::GetFlag(FLAGS_precision) < 0 || absl::GetFlag(FLAGS_prefill_precision) < 0) {
    return InvalidFlags("--precision and --prefill-precision must be >= 0");
  }
  if (auto color = cli::ShouldColor(absl::GetFlag(FLAGS_color), false, nullptr, nullptr);
      !color.ok())
    return color.status();
  // Chat flags.
  if (!absl::GetFlag(FLAGS_chat) && (cli::FlagGiven("system") || cli::FlagGiven("chat_template"))) {
    return InvalidFlags("--system and --chat-template need --chat");
  }
  if (absl::GetFlag(FLAGS_chat_template) != "auto") {
    auto t = models::ChatTemplate::FromName(absl::GetFlag(FLAGS_chat_template));
    if (!t.ok()) return InvalidFlags(t.status().message());
  }
  // Flags that only mean something with a schedule (they were silently ignored).
  const std::string scheduler = absl::GetFlag(FLAGS_scheduler);
  if (absl::GetFlag(FLAGS_precisions).empty()) {
    for (const auto& [set, flag] :
         {std::pair{!absl::GetFlag(FLAGS_switch_steps).empty(), "--switch-steps"},
          std::pair{!absl::GetFlag(FLAGS_classifier).empty(), "--classifier"},
          std::pair{absl::GetFlag(FLAGS_prefill_precision) != 0, "--prefill-precision"},
          std::pair{scheduler != "static", "--scheduler"},
          std::pair{cli::FlagGiven("force"), "--force"}}) {
      if (set)
        return InvalidFlags(absl::StrCat(flag, " needs --precisions (a schedule, high to low)"));
    }
    return absl::OkStatus();
  }
  if (absl::GetFlag(FLAGS_precision) != 0) {
    return InvalidFlags(
        "--precision (one precision) and --precisions (a schedule) exclude each other");
  }
  auto precisions =
      scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 1, "--precisions");
  if (!precisions.ok()) return precisions.status();
  if (scheduler == "static") {
    if (!absl::GetFlag(FLAGS_classifier).empty() || cli::FlagGiven("force")) {
      return InvalidFlags(absl::StrCat(
          cli::FlagGiven("force") ? "--force" : "--classifier",
          " is for --scheduler learned; the static scheduler switches at --switch-steps"));
    }
    if (precisions->size() > 1 && absl::GetFlag(FLAGS_switch_steps).empty()) {
      return InvalidFlags(
          "--scheduler static needs --switch-steps (one step per adjacent pair of --precisions, "
          "e.g. 16,64 for 4,3,2)");
    }
    auto steps = scheduler::ParseIntList(absl::GetFlag(FLAGS_switch_steps), "--switch-steps");
    if (!steps.ok()) return steps.status();
    auto made = scheduler::MakeStaticScheduler(*precisions, *steps);
    if (!made.ok()) return made.status();
  } else if (scheduler == "learned") {
    if (absl::GetFlag(FLAGS_classifier).empty()) {
      return InvalidFlags("--scheduler learned needs --classifier DIR (pmpd-train)");
    }
    if (!absl::GetFlag(FLAGS_switch_steps).empty()) {
      return InvalidFlags(
          "--switch-steps is for --scheduler static; the learned scheduler predicts the switch "
          "steps from the prompt (--scheduler learned)");
    }
    if (precisions->size() < 2) {
      return InvalidFlags("--scheduler learned needs at least two --precisions (one switch)");
    }
  } else {
    return InvalidFlags(absl::StrCat("--scheduler ", scheduler, ": expected static or learned"));
  }
  return absl::OkStatus();
}

int Run() {
  using namespace pmpd;
  inference::GenerationOptions opt;
  if (auto st = CheckFlags(&opt.sampling); !st.ok()) return cli::Fail(kProgram, st);
  const std::string model_dir = absl::GetFlag(FLAGS_model);
  std::string prompt = absl::GetFlag(FLAGS_prompt);
  if (!absl::GetFlag(FLAGS_prompt_file).empty()) {
    auto text = cli::ReadTextInput(absl::GetFlag(FLAGS_prompt_file), "--prompt-file");
    if (!text.ok()) return cli::Fail(kProgram, text.status());
    prompt = std::move(*text);
  } else if (prompt == "-") {
    auto text = cli::ReadTextInput("-", "--prompt");
    if (!text.ok()) return cli::Fail(kProgram, text.status());
    prompt = std::move(*text);
  }
  if (!models::FileExists(model_dir)) {
    return cli::Fail(kProgram, absl::NotFoundError(absl::StrCat("--model ", model_dir,
                                                                ": no such file or directory")));
  }
  std::string tok_path = absl::GetFlag(FLAGS_tokenizer);
  if (tok_path.empty()) tok_path = model_dir;
  auto tok = models::Tokenizer::Load(tok_path);
  if (!tok.ok()) return cli::Fail(kProgram, tok.status());
  auto device = inference::ParseDevice(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return cli::Fail(kProgram, device.status());
  // The CPU engine keeps its dequantized-weight cache (dense float products instead of reading the
  // planes every token), as in pmpd-eval and pmpd-gen-data.
  inference::LoadEngineOptions load_options;
  load_options.verbose = false;
  auto loaded = inference::LoadEngine(model_dir, *device, load_options);
  if (!loaded.ok()) return cli::Fail(kProgram, loaded.status());
  inference::Engine& engine = **loaded;
  if (absl::GetFlag(FLAGS_precision) != 0) {
    if (auto st = engine.SetPrecision(absl::GetFlag(FLAGS_precision)); !st.ok())
      return cli::Fail(kProgram, st);
  }

  opt.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  opt.stop_at_eos = !absl::GetFlag(FLAGS_ignore_eos);
  const bool json = absl::GetFlag(FLAGS_json);

  std::vector<int> prompt_ids;
  std::optional<models::ChatTemplate> chat;
  if (absl::GetFlag(FLAGS_chat)) {
    auto t = models::ChatTemplate::ForModel(absl::GetFlag(FLAGS_chat_template), **tok);
    if (!t.ok()) return cli::Fail(kProgram, t.status());
    chat = *t;
    std::vector<models::ChatMessage> messages;
    if (!absl::GetFlag(FLAGS_system).empty())
      messages.push_back({"system", absl::GetFlag(FLAGS_system)});
    messages.push_back({"user", prompt});
    auto ids = chat->Encode(**tok, messages, /*add_generation_prompt=*/true);
    if (!ids.ok()) return cli::Fail(kProgram, ids.status());
    prompt_ids = std::move(*ids);
    opt.stop_ids = chat->StopIds(**tok);
  } else {
    prompt_ids = (*tok)->Encode(prompt, /*add_bos=*/true);
  }
  // Every check before the prompt is echoed: a bad flag must not leave half an answer on stdout.
  std::unique_ptr<scheduler::PrecisionScheduler> sched;
  std::vector<int> legend;  // precisions of the schedule, for the color legend
  scheduler::ScheduledGenerationOptions sopt;
  sopt.generation = opt;
  if (!absl::GetFlag(FLAGS_precisions).empty()) {
    // Parsed and checked in CheckFlags.
    const std::vector<int> precisions =
        *scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 1, "--precisions");
    absl::StatusOr<std::unique_ptr<scheduler::PrecisionScheduler>> made;
    if (absl::GetFlag(FLAGS_scheduler) == "static") {
      made = scheduler::MakeStaticScheduler(
          precisions,
          *scheduler::ParseIntList(absl::GetFlag(FLAGS_switch_steps), "--switch-steps"));
    } else {
      scheduler::LearnedSchedulerOptions lo;
      lo.classifier_dir = absl::GetFlag(FLAGS_classifier);
      lo.precisions = precisions;
      lo.kv_heads = engine.config().num_key_value_heads;
      lo.head_dim = engine.config().head_dim;
      lo.device = inference::DeviceName(
          engine.device());       // where the engine runs: its KV cache is read in place
      lo.model_path = model_dir;  // classifiers exported for another model are refused
      lo.force = absl::GetFlag(FLAGS_force);
      made = scheduler::MakeLearnedScheduler(lo);
    }
    if (!made.ok()) return cli::Fail(kProgram, made.status());
    sched = std::move(*made);
    legend = precisions;
    sopt.prefill_precision = absl::GetFlag(FLAGS_prefill_precision);
  }
  if (auto st = scheduler::CheckScheduledGeneration(engine, prompt_ids, sopt, sched.get());
      !st.ok())
    return cli::Fail(kProgram, st);

  models::IncrementalDetokenizer detok(**tok, prompt_ids);
  const bool color = *cli::ShouldColor(absl::GetFlag(FLAGS_color), isatty(STDOUT_FILENO),
                                       std::getenv("NO_COLOR"), std::getenv("TERM"));
  // Chat: the user's message on its own line, then the answer (without its leading spaces).
  if (!json) std::cout << prompt << (chat ? "\n" : "") << std::flush;
  bool answer_started = !chat.has_value();
  auto show = [&](int id, int precision) {
    // A stop token (EOS, the template's end of turn) ends the answer and is not shown.
    if (json || inference::IsStopToken(opt, engine.config().eos_token_ids, id)) return;
    std::string piece = detok.Push(id);
    if (!answer_started) {
      piece.erase(0, std::min(piece.size(), piece.find_first_not_of(' ')));
      answer_started = !piece.empty();
    }
    if (color && precision > 0 && !piece.empty()) {
      std::cout << kColors.at(precision) << piece << "\033[0m" << std::flush;
    } else {
      std::cout << piece << std::flush;
    }
  };
  absl::StatusOr<inference::GenerationResult> result;
  std::vector<int> token_precisions;
  double avg_bits = 0, schedule_us = 0;
  std::string schedule;
  auto r = scheduler::GenerateScheduled(engine, prompt_ids, sopt, sched.get(),
                                        [&](int id, int p) { show(id, sched ? p : 0); });
  if (!r.ok()) {
    result = r.status();
  } else {
    result = r->generation;
    token_precisions = r->token_precisions;
    avg_bits = r->avg_bits;
    schedule_us = r->schedule_us;
    if (sched) schedule = sched->Describe();  // the learned scheduler names its predicted steps now
  }
  if (!result.ok()) {
    if (!json) std::cout << "\n";
    return cli::Fail(kProgram, result.status());
  }
  const std::string text = (*tok)->Decode(result->text_ids());
  if (json) {
    nlohmann::json j;
    j["model"] = model_dir;
    j["prompt"] = prompt;
    if (chat) j["chat_template"] = chat->name();
    j["prompt_ids"] = result->prompt_ids;
    j["new_ids"] = result->new_ids;
    j["text"] = text;
    j["finish_reason"] = result->finish_reason;
    j["precision"] = engine.precision();
    j["device"] = inference::DeviceName(engine.device());
    j["precisions"] = token_precisions;
    j["avg_bits"] = avg_bits;
    if (!schedule.empty()) {
      j["schedule"] = schedule;
      j["schedule_us"] = schedule_us;
    }
    j["prefill_ms"] = result->prefill_ms;
    j["decode_ms"] = result->decode_ms;
    j["decode_steps"] = result->decode_steps;
    j["decode_tokens_per_s"] = result->decode_tokens_per_s();
    std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "\n";
    std::fprintf(stderr,
                 "[%zu prompt tokens, %zu new tokens (%s); prefill %.1f ms; decode %.1f tokens/s",
                 result->prompt_ids.size(), result->new_ids.size(), result->finish_reason.c_str(),
                 result->prefill_ms, result->decode_tokens_per_s());
    if (avg_bits > 0) std::fprintf(stderr, "; average %.2f bits", avg_bits);
    if (!schedule.empty())
      std::fprintf(stderr, "; %s; scheduler %.0f us", schedule.c_str(), schedule_us);
    std::fprintf(stderr, "]\n");
    if (color && !schedule.empty()) {
      std::fprintf(stderr, "[colors:");
      for (int p : legend) {
        std::fprintf(stderr, " %s%d bits\033[0m", kColors.at(p), p);
      }
      std::fprintf(stderr, "]\n");
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "Generate text with a Llama-family model on the CPU reference engine or the CUDA engine\n"
      "(--device cpu|cuda|auto), at one precision or down a schedule (--scheduler "
      "static|learned).\n"
      "\nExamples:\n"
      "  pmpd-generate --model ../shared/models/stories260K --prompt \"Once upon a time\" "
      "--max-new-tokens 64\n"
      "  pmpd-generate --model DIR --prompt-file prompt.txt --precisions 4,3,2 --switch-steps "
      "16,64\n"
      "  echo \"Once upon a time\" | pmpd-generate --model DIR --prompt -",
      {{"Model", {"model", "tokenizer", "device", "precision"}},
       {"Prompt", {"prompt", "prompt_file", "chat", "system", "chat_template"}},
       {"Generation", {"max_new_tokens", "temperature", "top_k", "top_p", "seed", "ignore_eos"}},
       {"Schedule (PMPD)",
        {"precisions", "scheduler", "switch_steps", "prefill_precision", "classifier", "force"}},
       {"Output", {"json", "color"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-generate", [] { return Run(); });
}
