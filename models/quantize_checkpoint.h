// Whole-checkpoint quantization: a Hugging Face Llama directory in, an any-precision directory out
// (our safetensors layout, see docs/anyprec-format.md). Resumable: each finished layer is saved to
// OUT/.partial/layer_<l>.safetensors (atomically) and reused by a rerun with the same options. The
// finished checkpoint (model.safetensors, config.json, tokenizer files) replaces OUT's previous
// contents in one base::AtomicDirectory commit: a kill leaves the previous checkpoint (or none) or
// the complete new one, never a mix.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/anyprec_quantizer.h"

namespace pmpd::models {

// Quantizes one matrix w [N, K] with sensitivities f (nullptr: uniform), e.g. on the GPU.
using MatrixQuantizer = std::function<absl::StatusOr<AnyprecMatrix>(
    const float* w, const float* f, int N, int K, const AnyprecQuantizeOptions& options)>;

struct QuantizeCheckpointOptions {
  AnyprecQuantizeOptions quant;
  // Fingerprint of the sensitivities (e.g. calibration file, samples, seq len, device); a rerun
  // with another fingerprint refuses to reuse partial layers.
  std::string sensitivity_tag = "uniform";
  // Layers from the last to the first: the order a streamed sensitivity pass (backward through
  // the layers) produces them in.
  bool top_down = false;
  // Empty: QuantizeAnyprec on quant.threads CPU threads.
  MatrixQuantizer quantize_matrix;
  // Sharding (one process per GPU or host on the same OUT): the layers this run computes; the
  // others are left to other runs (empty: every layer). See QuantizeCheckpoint for the hand-over.
  std::function<bool(int layer)> owns_layer;
};

struct QuantizeReport {
  int layers_quantized = 0;  // computed in this run
  int layers_resumed = 0;    // loaded from .partial
  int64_t rows = 0;          // rows quantized in this run
  double seconds = 0;        // quantization time in this run (sensitivities excluded)
  int layers_missing = 0;    // owned by other shards and not yet in .partial
  bool written = false;      // this run wrote the checkpoint (false: layers_missing > 0, or
                             // another shard wrote it first)
};

// A layer's sensitivities, "model.layers.<l>.<module>" -> [N*K] (a module missing: uniform
// weights). Asked once for each layer this run quantizes (never for a resumed one), in the run's
// layer order.
using LayerSensitivities =
    std::function<absl::StatusOr<std::map<std::string, std::vector<float>>>(int layer)>;

// `sensitivities` may be empty (uniform everywhere). `on_layer(l, layers, resumed)` is called
// after each layer is saved; returning false stops the run there with a Cancelled status (a rerun
// resumes after that layer). Copies tokenizer files; a GGUF `src_dir` (a .gguf file) gets
// config.json and Hugging Face tokenizer files written from it.
// Memory: one layer's weights, sensitivities and results at a time; the final file is streamed
// from the partial layers and the source, whose mapped pages are released as they are written.
// Shards (options.owns_layer): each run quantizes its layers into OUT/.partial; whichever run
// finds every layer there writes the checkpoint, under an exclusive lock on OUT/.partial, so
// concurrent shards write it once; the others return OK with layers_missing > 0 (not written
// yet) or written == false (already written). Partial layers copied in from other machines'
// OUT/.partial resume like this run's own.
absl::Status QuantizeCheckpoint(const std::string& src_dir, const std::string& out_dir,
                                const QuantizeCheckpointOptions& options,
                                const LayerSensitivities& sensitivities,
                                const std::function<bool(int, int, bool)>& on_layer,
                                QuantizeReport* report);

// Baseline: per-row round-to-nearest uniform quantization (asymmetric min/max) of the 7 projections
// at `bits`, written back as a plain float32 checkpoint (fake-quantized), tokenizer copied.
absl::Status WriteRtnCheckpoint(const std::string& src_dir, const std::string& out_dir, int bits);

}  // namespace pmpd::models
