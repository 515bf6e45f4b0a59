// pmpd-quantize: Hugging Face Llama checkpoint -> any-precision checkpoint (seed..parent bits).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
#include "inference/llama_model.h"
#include "inference/perplexity.h"
#include "models/file_util.h"
#include "models/quantize_checkpoint.h"
#include "models/text_data.h"
#include "models/tokenizer.h"

ABSL_FLAG(std::string, model, "",
          "Source model: a Hugging Face Llama directory, or a llama GGUF file (F32, F16, BF16, "
          "Q8_0, Q4_0 or Q4_1 tensors, dequantized to float32 first). Required.");
ABSL_FLAG(std::string, out, "", "Output directory for the any-precision checkpoint. Required.");
ABSL_FLAG(int, seed_precision, 2,
          "Seed precision S (bits of the k-means seed, >= 2): the lowest precision served. The "
          "default 2 serves every PMPD ladder down to 2 bits (e.g. --precisions 4,3,2).");
ABSL_FLAG(int, parent_precision, 8, "Parent precision P (<= 8): the highest precision served.");
ABSL_FLAG(std::string, calib, "",
          "Calibration text for the Fisher sensitivities: C4-style JSON lines (.json, .jsonl, "
          ".json.gz) with a "
          "`text` field, or plain text. Empty: unweighted k-means (no sensitivities; a warning).");
ABSL_FLAG(int, num_calib_seqs, 100,
          "Calibration sequences (windows of --seq-len tokens). Was --calib-samples (still "
          "accepted).");
ABSL_FLAG(int, seq_len, 512, "Tokens per calibration sequence (capped at the model's context).");
ABSL_FLAG(int, threads, 0, "Quantization threads (rows in parallel); 0 = all cores.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the k-means++ initialisation.");
ABSL_FLAG(int, rtn_bits, 0,
          "Baseline mode: write a round-to-nearest (per-row min/max) fake-quantized float "
          "checkpoint at this many bits instead of an any-precision one.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu or auto (the same here): the sensitivity pass runs on the CPU reference engine. "
          "Accepted for the same --device vocabulary as the other tools; cuda is refused.");
ABSL_FLAG(bool, json, false, "Print one JSON summary line at the end.");

namespace {
constexpr char kProgram[] = "pmpd-quantize";

// Every flag on its own and against the mode chosen (--rtn-bits or any-precision), before any
// file is read.
absl::Status CheckFlags() {
  using namespace pmpd;
  if (absl::GetFlag(FLAGS_model).empty() || absl::GetFlag(FLAGS_out).empty())
    return absl::InvalidArgumentError("--model and --out are required (see --help)");
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device), /*cpu_only=*/true); !st.ok())
    return st;
  if (absl::GetFlag(FLAGS_threads) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--threads must be >= 0 (0: all cores), got ", absl::GetFlag(FLAGS_threads)));
  }
  if (cli::FlagGiven("rtn_bits")) {
    const int bits = absl::GetFlag(FLAGS_rtn_bits);
    if (bits < 1 || bits > 8) {
      return absl::InvalidArgumentError(absl::StrCat("--rtn-bits must be in 1..8, got ", bits));
    }
    // Round-to-nearest has no seed, parent, calibration or k-means: those flags would be ignored.
    for (const char* flag : {"--seed-precision", "--parent-precision", "--calib",
                             "--num-calib-seqs", "--seq-len", "--seed"}) {
      const std::string name = absl::StrReplaceAll(flag + 2, {{"-", "_"}});
      if (cli::FlagGiven(name)) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag,
                         " has no effect with --rtn-bits (round-to-nearest uses no seed precision, "
                         "calibration or k-means)"));
      }
    }
    return absl::OkStatus();
  }
  const int seed_bits = absl::GetFlag(FLAGS_seed_precision);
  const int parent_bits = absl::GetFlag(FLAGS_parent_precision);
  if (seed_bits < 2 || parent_bits > 8 || seed_bits > parent_bits) {
    return absl::InvalidArgumentError(absl::StrCat("--seed-precision ", seed_bits,
                                                   " and --parent-precision ", parent_bits,
                                                   " must satisfy 2 <= seed <= parent <= 8"));
  }
  if (absl::GetFlag(FLAGS_seq_len) < 2 || absl::GetFlag(FLAGS_num_calib_seqs) < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--seq-len must be >= 2 and --num-calib-seqs >= 1, got ",
                     absl::GetFlag(FLAGS_seq_len), " and ", absl::GetFlag(FLAGS_num_calib_seqs)));
  }
  if (absl::GetFlag(FLAGS_calib).empty()) {
    for (const char* flag : {"--num-calib-seqs", "--seq-len"}) {
      if (cli::FlagGiven(absl::StrReplaceAll(flag + 2, {{"-", "_"}}))) {
        return absl::InvalidArgumentError(
            absl::StrCat(flag, " has no effect without --calib (the calibration text)"));
      }
    }
  }
  return absl::OkStatus();
}

int Run() {
  using namespace pmpd;
  if (auto st = CheckFlags(); !st.ok()) return cli::Fail(kProgram, st);
  const std::string src = absl::GetFlag(FLAGS_model), out = absl::GetFlag(FLAGS_out);
  if (!models::FileExists(src)) {
    return cli::Fail(kProgram, absl::NotFoundError(
                                   absl::StrCat("--model ", src, ": no such file or directory")));
  }
  if (cli::FlagGiven("rtn_bits")) {
    if (auto st = models::WriteRtnCheckpoint(src, out, absl::GetFlag(FLAGS_rtn_bits)); !st.ok()) {
      return cli::Fail(kProgram, st);
    }
    std::fprintf(stderr, "wrote a %d-bit RTN checkpoint to %s\n", absl::GetFlag(FLAGS_rtn_bits),
                 out.c_str());
    return 0;
  }
  models::QuantizeCheckpointOptions opt;
  opt.quant.seed_bits = absl::GetFlag(FLAGS_seed_precision);
  opt.quant.parent_bits = absl::GetFlag(FLAGS_parent_precision);
  opt.quant.seed = absl::GetFlag(FLAGS_seed);
  opt.quant.threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : static_cast<int>(std::thread::hardware_concurrency());
  if (absl::GetFlag(FLAGS_calib).empty()) {
    cli::Warn(kProgram,
              "no --calib: plain k-means, every weight counting the same (no Fisher "
              "sensitivities); pass --calib FILE (e.g. a C4 JSON-lines file) for the weighted "
              "quantization PMPD expects");
  }
  std::map<std::string, std::vector<float>> fisher;
  double fisher_s = 0;
  const std::string calib = absl::GetFlag(FLAGS_calib);
  if (!calib.empty()) {
    auto docs = models::ReadTextDocs(calib);
    if (!docs.ok()) return cli::Fail(kProgram, docs.status());
    auto tok = models::Tokenizer::Load(src);
    if (!tok.ok()) return cli::Fail(kProgram, tok.status());
    auto model = inference::LlamaModel::Load(src);
    if (!model.ok()) return cli::Fail(kProgram, model.status());
    const int seq_len = std::min(absl::GetFlag(FLAGS_seq_len), (*model)->max_context());
    const std::vector<int> stream = inference::TokenStream(**tok, docs->texts);
    std::vector<std::vector<int>> seqs;
    for (size_t s = 0; s + seq_len <= stream.size() &&
                       static_cast<int>(seqs.size()) < absl::GetFlag(FLAGS_num_calib_seqs);
         s += seq_len) {
      seqs.emplace_back(stream.begin() + s, stream.begin() + s + seq_len);
    }
    if (seqs.empty()) {
      return cli::Fail(kProgram, absl::InvalidArgumentError(absl::StrCat(
                                     calib, ": too little text for one calibration sequence of ",
                                     seq_len, " tokens")));
    }
    const auto t0 = std::chrono::steady_clock::now();
    cli::Progress progress("sensitivity", static_cast<int64_t>(seqs.size()), "sequences");
    auto f = (*model)->FisherSensitivity(seqs, [&](int done) { progress.Update(done); });
    progress.Finish();
    if (!f.ok()) return cli::Fail(kProgram, f.status());
    fisher = std::move(*f);
    fisher_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    opt.sensitivity_tag = absl::StrCat("fisher:", calib, ":", seqs.size(), "x", seq_len);
  }
  models::QuantizeReport report;
  std::unique_ptr<cli::Progress> progress;  // made at the first layer, when the count is known
  bool computed_any = false;
  auto st = models::QuantizeCheckpoint(
      src, out, opt, fisher,
      [&](int l, int layers, bool resumed) {
        if (!progress) progress = std::make_unique<cli::Progress>("quantize", layers, "layers");
        // Layers found on disk were quantized by an earlier run: not part of this run's rate.
        if (resumed && !computed_any) progress->Resumed(l + 1);
        computed_any = computed_any || !resumed;
        progress->Update(l + 1, resumed ? "(resumed)" : "");
        return true;
      },
      &report);
  if (progress) progress->Finish();
  if (!st.ok()) return cli::Fail(kProgram, st);
  const double rows_per_s = report.seconds > 0 ? report.rows / report.seconds : 0;
  std::fprintf(stderr,
               "wrote %s: precisions %d..%d, %lld rows in %.2f s (%.0f rows/s, %d threads), %d "
               "layers resumed\n",
               out.c_str(), opt.quant.seed_bits, opt.quant.parent_bits,
               static_cast<long long>(report.rows), report.seconds, rows_per_s, opt.quant.threads,
               report.layers_resumed);
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"out", out},
                        {"seed_precision", opt.quant.seed_bits},
                        {"parent_precision", opt.quant.parent_bits},
                        {"rows", report.rows},
                        {"quantize_seconds", report.seconds},
                        {"rows_per_s", rows_per_s},
                        {"threads", opt.quant.threads},
                        {"sensitivity_seconds", fisher_s},
                        {"sensitivity", opt.sensitivity_tag},
                        {"layers_resumed", report.layers_resumed}};
    std::cout << j.dump() << "\n";
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "Quantize a Hugging Face Llama checkpoint into any-precision form: one set of bitplanes and "
      "per-row\n"
      "lookup tables serving every precision from --seed-precision to --parent-precision.\n\n"
      "Example:\n"
      "  pmpd-quantize --model ../shared/models/stories260K --out /tmp/s260k-ap --seed-precision 2 "
      "--parent-precision 8 \\\n"
      "      --calib ../shared/data/c4/c4-validation.00000-of-00008.first800.json.gz",
      {{"Model", {"model", "out", "device"}},
       {"Any-precision quantization", {"seed_precision", "parent_precision", "seed", "threads"}},
       {"Calibration (Fisher sensitivities)", {"calib", "num_calib_seqs", "seq_len"}},
       {"Baseline", {"rtn_bits"}},
       {"Output", {"json"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-quantize", [] { return Run(); });
}
