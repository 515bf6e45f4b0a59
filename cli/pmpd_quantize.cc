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
#include "inference/anyprec_quantize_cuda.h"
#include "inference/fisher_stream.h"
#include "inference/perplexity.h"
#include "kernels/check.h"
#include "models/file_util.h"
#include "models/llama_config.h"
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
          "cpu, cuda or auto (cuda when a GPU is visible): where the Fisher sensitivities and the "
          "k-means run. Both stream the model layer by layer (memory: a few layers plus the "
          "calibration activations); the GPU's k-means equals the CPU's bit for bit, its "
          "sensitivities differ by summation order.");
ABSL_FLAG(int, fisher_checkpoint_every, 0,
          "Sensitivity pass: keep the activations entering every N-th layer and recompute the "
          "others (memory ~ (layers/N + N) x calibration tokens x hidden x 4 bytes); 0 = "
          "ceil(sqrt(layers)).");
ABSL_FLAG(std::string, shard, "0/1",
          "i/n: quantize only the layers l with (layers - 1 - l) % n == i, into --out's .partial "
          "(one process per GPU: CUDA_VISIBLE_DEVICES=i ... --shard i/4, same --out). The run that "
          "finds every layer there writes the checkpoint; the others exit 0 saying so. Across "
          "machines: copy each OUT/.partial/* into one and rerun without --shard.");
ABSL_FLAG(bool, json, false, "Print one JSON summary line at the end.");

namespace {
constexpr char kProgram[] = "pmpd-quantize";

// --shard i/n with 0 <= i < n.
absl::Status ParseShard(int* index, int* count) {
  const std::string v = absl::GetFlag(FLAGS_shard);
  if (auto st = pmpd::cli::ParseShard(v, index, count); !st.ok()) return st;
  if (*count < 1 || *index < 0 || *index >= *count) {
    return absl::InvalidArgumentError(
        absl::StrCat("--shard \"", v, "\": expected i/n with 0 <= i < n, e.g. 0/4"));
  }
  return absl::OkStatus();
}

// Every flag on its own and against the mode chosen (--rtn-bits or any-precision), before any
// file is read.
absl::Status CheckFlags() {
  using namespace pmpd;
  if (absl::GetFlag(FLAGS_model).empty() || absl::GetFlag(FLAGS_out).empty())
    return absl::InvalidArgumentError("--model and --out are required (see --help)");
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device), /*cpu_only=*/false); !st.ok())
    return st;
  int shard_index = 0, shard_count = 1;
  if (auto st = ParseShard(&shard_index, &shard_count); !st.ok()) return st;
  if (absl::GetFlag(FLAGS_device) == "cuda" && cli::FlagGiven("threads")) {
    return absl::InvalidArgumentError(
        "--threads has no effect with --device cuda (the k-means runs on the GPU)");
  }
  if (absl::GetFlag(FLAGS_fisher_checkpoint_every) < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--fisher-checkpoint-every must be >= 0 (0: sqrt of the layer count), got ",
                     absl::GetFlag(FLAGS_fisher_checkpoint_every)));
  }
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
    for (const char* flag :
         {"--seed-precision", "--parent-precision", "--calib", "--num-calib-seqs", "--seq-len",
          "--seed", "--device", "--fisher-checkpoint-every", "--shard"}) {
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
    for (const char* flag : {"--num-calib-seqs", "--seq-len", "--fisher-checkpoint-every"}) {
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
  const auto wall0 = std::chrono::steady_clock::now();
  std::string device = absl::GetFlag(FLAGS_device);
  if (device == "auto") device = inference::CudaDeviceCount() > 0 ? "cuda" : "cpu";
  if (device == "cuda" && inference::CudaDeviceCount() == 0) {
    return cli::Fail(kProgram, absl::FailedPreconditionError(
                                   "--device cuda: no CUDA device on this machine (or a build "
                                   "without CUDA); use --device cpu"));
  }
  models::QuantizeCheckpointOptions opt;
  opt.quant.seed_bits = absl::GetFlag(FLAGS_seed_precision);
  opt.quant.parent_bits = absl::GetFlag(FLAGS_parent_precision);
  opt.quant.seed = absl::GetFlag(FLAGS_seed);
  opt.quant.threads = absl::GetFlag(FLAGS_threads) > 0
                          ? absl::GetFlag(FLAGS_threads)
                          : static_cast<int>(std::thread::hardware_concurrency());
  if (device == "cuda") opt.quantize_matrix = inference::QuantizeAnyprecCuda;
  int shard_index = 0, shard_count = 1;
  PMPD_CHECK(ParseShard(&shard_index, &shard_count).ok(), "checked by CheckFlags");
  auto src_config = models::LoadLlamaConfig(src);
  if (!src_config.ok()) return cli::Fail(kProgram, src_config.status());
  const int num_layers = src_config->num_hidden_layers;
  // Interleaved from the top: every shard's backward walk reaches about as far down.
  auto owns = [&](int l) { return (num_layers - 1 - l) % shard_count == shard_index; };
  int owned = 0;
  for (int l = 0; l < num_layers; ++l) owned += owns(l);
  if (shard_count > 1) opt.owns_layer = owns;
  if (absl::GetFlag(FLAGS_calib).empty()) {
    cli::Warn(kProgram,
              "no --calib: plain k-means, every weight counting the same (no Fisher "
              "sensitivities); pass --calib FILE (e.g. a C4 JSON-lines file) for the weighted "
              "quantization PMPD expects");
  }
  // Calibration sequences; the streamed sensitivity pass starts at the first layer to compute
  // (a fully resumed run never pays for it).
  std::vector<std::vector<int>> seqs;
  const std::string calib = absl::GetFlag(FLAGS_calib);
  if (!calib.empty()) {
    auto docs = models::ReadTextDocs(calib);
    if (!docs.ok()) return cli::Fail(kProgram, docs.status());
    auto tok = models::Tokenizer::Load(src);
    if (!tok.ok()) return cli::Fail(kProgram, tok.status());
    const int seq_len = std::min(absl::GetFlag(FLAGS_seq_len), src_config->max_position_embeddings);
    const std::vector<int> stream = inference::TokenStream(**tok, docs->texts);
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
    // GPU sensitivities sum in another order than the CPU's: partial layers do not mix.
    opt.sensitivity_tag = absl::StrCat("fisher:", calib, ":", seqs.size(), "x", seq_len,
                                       device == "cuda" ? ":cuda" : "");
    opt.top_down = true;
  }
  std::unique_ptr<inference::FisherStream> fisher;
  std::unique_ptr<cli::Progress> forward;  // the forward pass's progress (outlives the callback)
  double fisher_s = 0;
  int64_t fisher_activation_bytes = 0;
  models::LayerSensitivities sensitivities;
  if (!seqs.empty()) {
    sensitivities = [&](int l) -> absl::StatusOr<std::map<std::string, std::vector<float>>> {
      const auto t0 = std::chrono::steady_clock::now();
      if (!fisher) {
        inference::FisherStreamOptions fo;
        fo.device = device;
        fo.checkpoint_every = absl::GetFlag(FLAGS_fisher_checkpoint_every);
        fo.progress = [&](const std::string& phase, int64_t done, int64_t total) {
          if (phase != "forward") return;
          if (!forward) {
            forward = std::make_unique<cli::Progress>(
                absl::StrCat("sensitivity forward (", seqs.size(), " sequences)"), total, "layers");
          }
          forward->Update(done);
        };
        auto created = inference::FisherStream::Create(src, seqs, fo);
        if (forward) forward->Finish();
        if (!created.ok()) return created.status();
        fisher = std::move(*created);
      }
      auto out = fisher->Layer(l);
      fisher_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      fisher_activation_bytes = fisher->peak_activation_bytes();
      return out;
    };
  }
  models::QuantizeReport report;
  std::unique_ptr<cli::Progress> progress;  // made at the first layer, when the count is known
  bool computed_any = false;
  int steps = 0;
  auto st = models::QuantizeCheckpoint(
      src, out, opt, sensitivities,
      [&](int l, int layers, bool resumed) {
        if (!owns(l)) return true;  // another shard's layer, already in .partial: not ours to count
        if (!progress) {
          progress = std::make_unique<cli::Progress>(
              shard_count > 1 ? absl::StrCat("quantize (shard ", shard_index, "/", shard_count, ")")
                              : std::string("quantize"),
              shard_count > 1 ? owned : layers, "layers");
        }
        ++steps;
        // Layers found on disk were quantized by an earlier run: not part of this run's rate.
        if (resumed && !computed_any) progress->Resumed(steps);
        computed_any = computed_any || !resumed;
        progress->Update(
            steps, resumed ? absl::StrCat("layer ", l, " (resumed)") : absl::StrCat("layer ", l));
        return true;
      },
      &report);
  if (progress) progress->Finish();
  if (!st.ok()) return cli::Fail(kProgram, st);
  if (report.layers_missing > 0) {
    std::fprintf(stderr,
                 "%s: shard %d/%d done; %d layers of other shards are not in %s/.partial yet: the "
                 "shard that completes them writes the checkpoint\n",
                 kProgram, shard_index, shard_count, report.layers_missing, out.c_str());
  } else if (!report.written) {
    std::fprintf(stderr, "%s: shard %d/%d done; another shard wrote the checkpoint %s\n", kProgram,
                 shard_index, shard_count, out.c_str());
  }
  const double rows_per_s = report.seconds > 0 ? report.rows / report.seconds : 0;
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::fprintf(stderr,
               "%s %s: precisions %d..%d on %s, %lld rows in %.2f s (%.0f rows/s%s), "
               "sensitivities %.2f s, %d layers resumed, %.1f s in all\n",
               report.written ? "wrote" : "quantized layers for", out.c_str(), opt.quant.seed_bits,
               opt.quant.parent_bits, device.c_str(), static_cast<long long>(report.rows),
               report.seconds, rows_per_s,
               device == "cpu" ? absl::StrCat(", ", opt.quant.threads, " threads").c_str() : "",
               fisher_s, report.layers_resumed, wall_s);
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {
        {"out", out},
        {"device", device},
        {"seed_precision", opt.quant.seed_bits},
        {"parent_precision", opt.quant.parent_bits},
        {"rows", report.rows},
        {"quantize_seconds", report.seconds},
        {"rows_per_s", rows_per_s},
        {"threads", opt.quant.threads},
        {"sensitivity_seconds", fisher_s},
        {"sensitivity", opt.sensitivity_tag},
        {"calibration_sequences", seqs.size()},
        {"fisher_activation_bytes", fisher_activation_bytes},
        {"layers_resumed", report.layers_resumed},
        {"layers_quantized", report.layers_quantized},
        {"layers_missing", report.layers_missing},
        {"checkpoint_written", report.written},
        {"shard", absl::StrCat(shard_index, "/", shard_count)},
        {"wall_seconds", wall_s},
        {"peak_host_bytes", cli::PeakHostBytes()},
        {"peak_gpu_bytes", device == "cuda" ? inference::CudaPeakReservedBytes() : 0}};
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
       {"Any-precision quantization",
        {"seed_precision", "parent_precision", "seed", "threads", "shard"}},
       {"Calibration (Fisher sensitivities)",
        {"calib", "num_calib_seqs", "seq_len", "fisher_checkpoint_every"}},
       {"Baseline", {"rtn_bits"}},
       {"Output", {"json"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-quantize", [] { return Run(); });
}
