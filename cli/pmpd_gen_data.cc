// pmpd-gen-data: label switch points on C4 and store last-layer KV caches in HDF5 (training data
// for the learned scheduler). `pmpd-gen-data merge --out FILE.h5 PART.h5...` joins shards.

#include <cstdint>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
#include "data_gen/gen_data_job.h"
#include "dataset/kv_dataset.h"
#include "inference/engine.h"
#include "scheduler_runtime/precision_scheduler.h"

ABSL_FLAG(std::string, model, "", "Any-precision model directory (see pmpd-quantize). Required.");
ABSL_FLAG(std::string, precisions, "4,3,2",
          "Precisions high to low; one label per adjacent pair (4,3,2 -> pairs 4->3 and 3->2).");
ABSL_FLAG(std::string, c4, "",
          "C4 documents: a .json/.jsonl(.gz) JSON-lines file with a `text` field, a directory of "
          "such shards, or a "
          "quoted glob ('c4/en/c4-train.*.json.gz'); other files are plain text with documents "
          "separated by "
          "<|endoftext|> (TinyStories). Streamed; malformed lines and empty texts are skipped and "
          "counted. Required.");
ABSL_FLAG(std::string, chat_instruction, "",
          "Instruct models: make each prompt the model's chat template around the user message "
          "\"<this text>\\n\\n<document prefix>\" (e.g. \"Summarize the following text.\"), so the "
          "labels "
          "come from prompts like the ones it serves. Empty: the document prefix as plain text.");
ABSL_FLAG(std::string, chat_template, "auto",
          "With --chat-instruction: auto (the model's own template) or chatml, llama2, vicuna.");
ABSL_FLAG(int, num_docs, 64, "Documents taken from the start of the input (all shards together).");
ABSL_FLAG(int, max_new_tokens, 256,
          "Tokens generated per prompt (reference, all-high output and branches).");
ABSL_FLAG(int, max_prompt_tokens, 2048,
          "Documents are capped at this many tokens (BOS included), and at the context minus "
          "--max-new-tokens.");
ABSL_FLAG(int, min_prefix_tokens, 32,
          "Each prompt is a seeded random prefix of the capped document, of length in [min(this, "
          "L/2), L].");
ABSL_FLAG(std::string, candidate_steps, "",
          "Switch steps tried per pair, increasing, in [0, --max-new-tokens) (default: "
          "0,N/3,2N/3). Labels are the "
          "index of the earliest step that keeps quality (--label-metric), or 'never'.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the prompt cuts (per document: the same in any shard).");
ABSL_FLAG(std::string, shard, "0/1",
          "i/n: process documents with index % n == i (one process per GPU or host); join parts "
          "with `merge`.");
ABSL_FLAG(std::string, out, "", "Output HDF5 file (layout: docs/gen-data-format.md). Required.");
ABSL_FLAG(std::string, reference_model, "",
          "Full-precision checkpoint whose greedy output is the reference (e.g. the one you "
          "quantized). Default: the "
          "any-precision model at --reference-precision.");
ABSL_FLAG(int, reference_precision, 0,
          "Reference precision without --reference-model (default: the parent, highest).");
ABSL_FLAG(int, flush_every, 8,
          "Samples per crash-safe segment: a kill loses at most this many samples' work.");
ABSL_FLAG(int, stop_after, 0,
          "Stop after computing this many samples (0: run to the end); rerun the same command to "
          "continue. For "
          "time-boxed jobs.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu (the reference engine), cuda (the CUDA engine for --model and --reference-model; "
          "builds with nvcc only) or auto (cuda when a GPU is visible).");
ABSL_FLAG(int, batch, 0,
          "Sequence slots of the engine (0: 8 on cuda, 1 on cpu). Above 1, with batched branches, "
          "up to --flush-every prompts are labelled together: their reference, all-high and branch "
          "runs decode as shared batched steps (the weights read once per step for all). Each cuda "
          "slot holds a KV cache of --max-prompt-tokens + --max-new-tokens positions.");
ABSL_FLAG(bool, tensor_core_rows, false,
          "cuda, --batch > 1: the tensor-core GEMV for steps of several rows (faster). Off, each "
          "row is computed as a single step would be, so labels do not depend on --batch, "
          "--flush-every or a resume; on, they may differ by float rounding.");
ABSL_FLAG(bool, kv_fp16, false,
          "cuda: keep the engine's KV cache in fp16 (half the memory and attention reads; labels "
          "may differ from an fp32 cache's by rounding).");
ABSL_FLAG(std::string, branches, "batched",
          "batched: branches share the prefix cache and decode as one batch; sequential: one "
          "generation per branch "
          "(the reference's way, for comparison).");
ABSL_FLAG(std::string, label_metric, "rouge_l",
          "rouge_l: each branch is decoded greedily and scored by Rouge-L against the reference "
          "text (the PMPD reference's labels); excess_nll: no branch is decoded, the reference "
          "continuation is teacher-forced through each switch and scored by the negative "
          "log-likelihood it adds (nats per token; steadier labels; pmpd-train "
          "--label-tolerance then is in nats per token).");
ABSL_FLAG(bool, json, false, "Print one JSON summary object as the last line.");

namespace {

constexpr char kProgram[] = "pmpd-gen-data";
using namespace pmpd;

void PrintBalance(const data_gen::GenDataReport& r, const std::vector<int>& precisions) {
  std::fprintf(stderr, "class balance (%lld samples):\n", static_cast<long long>(r.samples));
  std::string head = "  pair   ";
  for (int64_t s : r.candidate_steps) head += absl::StrFormat("%12s", absl::StrCat("step ", s));
  head += absl::StrFormat("%12s", "never");
  std::fprintf(stderr, "%s\n", head.c_str());
  for (size_t p = 0; p < r.class_counts.size(); ++p) {
    std::string row = absl::StrFormat("  %d->%d   ", precisions[p], precisions[p + 1]);
    for (int64_t c : r.class_counts[p]) {
      row += absl::StrFormat("%12s", absl::StrFormat("%lld (%.0f%%)", static_cast<long long>(c),
                                                     r.samples > 0 ? 100.0 * c / r.samples : 0.0));
    }
    std::fprintf(stderr, "%s\n", row.c_str());
  }
  if (r.median_excess_nll.empty()) return;
  std::fprintf(stderr,
               "labels at tolerance 0 (%s); median excess NLL, nats per token (pmpd-train "
               "--label-tolerance relabels):\n",
               r.label_metric.c_str());
  for (size_t p = 0; p < r.median_excess_nll.size(); ++p) {
    std::string row = absl::StrFormat("  %d->%d   ", precisions[p], precisions[p + 1]);
    for (double m : r.median_excess_nll[p]) row += absl::StrFormat("%12.4f", m);
    std::fprintf(stderr, "%s\n", row.c_str());
  }
}

int Merge(const std::vector<std::string>& parts) {
  const std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty() || parts.empty()) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(
                                   "usage: pmpd-gen-data merge --out FILE.h5 PART.h5..."));
  }
  if (auto st = data_gen::MergeGenDataShards(parts, out); !st.ok()) return cli::Fail(kProgram, st);
  auto r = data_gen::SummarizeGenData(out);
  if (!r.ok()) return cli::Fail(kProgram, r.status());
  std::fprintf(stderr, "merged %zu shards into %s\n", parts.size(), out.c_str());
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j{{"out", out},
                     {"samples", r->samples},
                     {"class_counts", r->class_counts},
                     {"label_metric", r->label_metric},
                     {"batch", r->batch},
                     {"peak_host_bytes", cli::PeakHostBytes()},
                     {"engine_device_bytes", r->engine_device_bytes}};
    if (!r->median_excess_nll.empty()) j["median_excess_nll"] = r->median_excess_nll;
    std::cout << j.dump() << "\n";
  }
  return 0;
}

int Run(const std::vector<std::string>& args) {
  if (!args.empty() && args[0] == "merge")
    return Merge(std::vector<std::string>(args.begin() + 1, args.end()));
  if (!args.empty()) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", args[0],
                                                             "\" (the only subcommand is merge)")));
  }
  data_gen::GenDataOptions o;
  o.model_dir = absl::GetFlag(FLAGS_model);
  o.source = absl::GetFlag(FLAGS_c4);
  o.chat_instruction = absl::GetFlag(FLAGS_chat_instruction);
  o.chat_template = absl::GetFlag(FLAGS_chat_template);
  o.out = absl::GetFlag(FLAGS_out);
  auto precisions =
      scheduler::ParsePrecisionLadder(absl::GetFlag(FLAGS_precisions), 2, "--precisions");
  if (!precisions.ok()) return cli::Fail(kProgram, precisions.status());
  o.precisions = *precisions;
  if (!absl::GetFlag(FLAGS_candidate_steps).empty()) {
    auto steps = scheduler::ParseIntList(absl::GetFlag(FLAGS_candidate_steps), "--candidate-steps");
    if (!steps.ok()) return cli::Fail(kProgram, steps.status());
    o.candidate_steps = *steps;
  }
  o.num_docs = absl::GetFlag(FLAGS_num_docs);
  o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  o.max_prompt_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  o.min_prefix_tokens = absl::GetFlag(FLAGS_min_prefix_tokens);
  o.seed = absl::GetFlag(FLAGS_seed);
  o.reference_model = absl::GetFlag(FLAGS_reference_model);
  o.reference_precision = absl::GetFlag(FLAGS_reference_precision);
  o.flush_every = absl::GetFlag(FLAGS_flush_every);
  o.stop_after = absl::GetFlag(FLAGS_stop_after);
  const std::string branches = absl::GetFlag(FLAGS_branches);
  if (branches != "batched" && branches != "sequential") {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError("--branches must be batched or sequential"));
  }
  o.batched_branches = branches == "batched";
  o.batch = absl::GetFlag(FLAGS_batch);
  o.kv_cache_fp16 = absl::GetFlag(FLAGS_kv_fp16);
  o.tensor_core_rows = absl::GetFlag(FLAGS_tensor_core_rows);
  o.label_metric = absl::GetFlag(FLAGS_label_metric);
  if (cli::FlagGiven("branches") && o.label_metric == dataset::kLabelExcessNll) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(
                                   "--branches has no effect with --label-metric excess_nll (no "
                                   "branch is decoded)"));
  }
  auto device = pmpd::inference::ParseDevice(absl::GetFlag(FLAGS_device), "--device");
  if (!device.ok()) return cli::Fail(kProgram, device.status());
  o.device = *device;
  if (auto st = cli::ParseShard(absl::GetFlag(FLAGS_shard), &o.shard_index, &o.shard_count);
      !st.ok()) {
    return cli::Fail(kProgram, st);
  }
  // Flags the chosen mode ignores.
  if (cli::FlagGiven("chat_template") && o.chat_instruction.empty()) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(
                                   "--chat-template has no effect without --chat-instruction "
                                   "(prompts are plain text then)"));
  }
  if (cli::FlagGiven("batch") &&
      (!o.batched_branches || o.label_metric == dataset::kLabelExcessNll)) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(
                                   "--batch has no effect with --branches sequential or "
                                   "--label-metric excess_nll (no batched branches are decoded)"));
  }
  for (const char* flag : {"tensor_core_rows", "kv_fp16"}) {
    if (cli::FlagGiven(flag) && o.device == pmpd::inference::Device::kCpu) {
      return cli::Fail(kProgram, absl::InvalidArgumentError(absl::StrCat(
                                     "--", absl::StrReplaceAll(flag, {{"_", "-"}}),
                                     " has no effect with --device cpu (a CUDA engine option)")));
    }
  }
  if (cli::FlagGiven("reference_precision") && !o.reference_model.empty()) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(
                                   "--reference-precision has no effect with --reference-model "
                                   "(the reference model runs at its own precision)"));
  }
  std::unique_ptr<cli::Progress> progress;  // made at the first update, when the total is known
  auto on_progress = [&](const data_gen::GenDataProgress& p) {
    if (!progress) {
      progress = std::make_unique<cli::Progress>("pmpd-gen-data", p.total, "samples");
      progress->Resumed(p.resumed);
    }
    progress->Update(p.done, p.resumed > 0 ? absl::StrCat("(", p.resumed, " resumed)") : "");
  };
  auto r = data_gen::RunGenData(o, on_progress);
  if (progress) progress->Finish();
  if (!r.ok()) return cli::Fail(kProgram, r.status());
  if (r->stopped_early) {
    std::fprintf(stderr,
                 "stopped after %lld samples (--stop-after); %lld of this shard are done; rerun to "
                 "continue\n",
                 static_cast<long long>(r->computed), static_cast<long long>(r->samples));
    if (absl::GetFlag(FLAGS_json)) {
      std::cout << nlohmann::json{{"out", o.out},
                                  {"stopped_early", true},
                                  {"samples", r->samples},
                                  {"computed", r->computed}}
                       .dump()
                << "\n";
    }
    return 0;
  }
  if (r->already_complete) {
    std::fprintf(stderr, "%s is already complete with these settings (%lld samples)\n",
                 o.out.c_str(), static_cast<long long>(r->samples));
  } else {
    std::fprintf(stderr,
                 "wrote %s: %lld samples (%lld resumed, %lld computed in %.1f s, %.2f samples/s); "
                 "skipped %lld "
                 "malformed lines and %lld empty texts\n",
                 o.out.c_str(), static_cast<long long>(r->samples),
                 static_cast<long long>(r->resumed), static_cast<long long>(r->computed),
                 r->seconds, r->samples_per_s, static_cast<long long>(r->malformed_lines),
                 static_cast<long long>(r->empty_texts));
  }
  PrintBalance(*r, o.precisions);
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j{{"out", o.out},
                     {"samples", r->samples},
                     {"resumed", r->resumed},
                     {"computed", r->computed},
                     {"seconds", r->seconds},
                     {"samples_per_s", r->samples_per_s},
                     {"malformed_lines", r->malformed_lines},
                     {"empty_texts", r->empty_texts},
                     {"already_complete", r->already_complete},
                     {"candidate_steps", r->candidate_steps},
                     {"class_counts", r->class_counts},
                     {"label_metric", r->label_metric},
                     {"batch", r->batch},
                     {"peak_host_bytes", cli::PeakHostBytes()},
                     {"engine_device_bytes", r->engine_device_bytes}};
    if (!r->median_excess_nll.empty()) j["median_excess_nll"] = r->median_excess_nll;
    std::cout << j.dump() << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cli::InitUsage(
      "pmpd-gen-data --model DIR --c4 PATH --out FILE.h5 [--precisions 4,3,2] [--num-docs N] "
      "[--max-new-tokens N]\n"
      "              [--candidate-steps 0,85,170] [--seed S] [--shard i/n] [--json]\n"
      "pmpd-gen-data merge --out FILE.h5 PART.h5...\n\n"
      "Labels, for each adjacent precision pair (hi, lo), the earliest step at which decoding can "
      "switch from hi to lo\n"
      "without losing quality on a reference continuation (--label-metric), and stores the last "
      "layer's KV "
      "cache after the prefill\n"
      "at hi (the learned scheduler's input). Killed runs resume when rerun with the same flags.",
      {{"Model",
        {"model", "device", "branches", "batch", "tensor_core_rows", "kv_fp16", "reference_model",
         "reference_precision"}},
       {"Data",
        {"c4", "num_docs", "shard", "seed", "max_prompt_tokens", "min_prefix_tokens",
         "chat_instruction", "chat_template"}},
       {"Labels", {"precisions", "candidate_steps", "max_new_tokens", "label_metric"}},
       {"Output", {"out", "flush_every", "stop_after", "json"}}});
  const std::vector<std::string> args = cli::ParseFlags(argc, argv, /*allow_positional=*/true);
  return cli::RunGuarded(kProgram, [&] { return Run(args); });
}
