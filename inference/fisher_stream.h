// Fisher sensitivities of a Llama checkpoint layer by layer, in memory bounded by a few layers'
// activations instead of the whole model: the quantizer asks for layer L-1, then L-2, ..., and
// quantizes each as it comes. Same numbers as LlamaModel::FisherSensitivity (the diagonal
// empirical Fisher: per sequence, the squared gradient of its mean next-token cross-entropy),
// computed as a backward pass that walks down the layers:
//
//   Create:  forward over every sequence, keeping the hidden states that enter every
//            `checkpoint_every`-th layer; then the loss gradient at the last layer's output.
//   Layer l: recompute the inputs of l's segment from its checkpoint (once per segment), then per
//            sequence: layer l forward with autograd from its input, backward from the gradient
//            at its output -> the weights' squared gradients (summed) and the gradient at its
//            input, which the next call continues from.
//
// Memory (float32, T = calibration tokens, H = hidden size, s = checkpoint_every):
//   (L / s + s + 1) T H 4 bytes of hidden states and gradients, plus one layer's weights three
//   times (weights, gradients, Fisher), plus the embeddings and lm_head. Default s = ceil(sqrt(L)).
// Compute: about two forward passes and one backward pass of the model per sequence.
// Runs on the CPU or, with LibTorch's CUDA, on the GPU (the same ops; cuBLAS sums in another
// order).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/llama_config.h"

namespace pmpd::inference {

struct FisherStreamOptions {
  std::string device = "cpu";  // "cpu" or "cuda"
  int checkpoint_every = 0;    // layers per recomputed segment; 0: ceil(sqrt(layers))
  // Progress of the forward pass (sequences done of total) and of each layer's backward.
  std::function<void(const std::string& phase, int64_t done, int64_t total)> progress;
};

class FisherStream {
 public:
  // Opens the full-precision checkpoint (a Hugging Face directory or a GGUF file) and runs the
  // forward pass. Errors: the model (named), an any-precision checkpoint, token ids out of range,
  // empty sequences or longer than the context (1-token ones are skipped: nothing to predict),
  // device cuda without CUDA, out of memory.
  static absl::StatusOr<std::unique_ptr<FisherStream>> Create(
      const std::string& model, const std::vector<std::vector<int>>& sequences,
      const FisherStreamOptions& options);
  ~FisherStream();

  int num_layers() const;
  // The sensitivities of layer l's projections: "model.layers.<l>.<module>" -> [N*K] row-major.
  // Layers come in decreasing order: l below every layer asked before. The layers skipped in
  // between cost a backward without squared weight gradients. After an error (e.g. out of
  // memory) the stream is spent: every later call returns that error.
  absl::StatusOr<std::map<std::string, std::vector<float>>> Layer(int l);
  // Peak bytes of hidden states and gradients held at once (the activation term of the bound).
  int64_t peak_activation_bytes() const;

 private:
  struct Impl;
  explicit FisherStream(std::unique_ptr<Impl> impl);
  static absl::StatusOr<std::unique_ptr<FisherStream>> CreateImpl(
      const std::string& model, const std::vector<std::vector<int>>& sequences,
      const FisherStreamOptions& options);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::inference
