// CPU reference Llama forward pass on LibTorch (float32 compute; 16-bit weights are upcast at
// load). The header is LibTorch-free on purpose: callers see token ids in and float logits out.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "inference/engine.h"
#include "models/llama_config.h"

namespace pmpd::inference {

// One model plus its KV cache (one sequence slot unless SetMaxBatch), the reference Engine. Not
// thread-safe. Beyond Engine: all-position logits, batched branches, sequence NLL, Fisher
// sensitivities.
class LlamaModel : public Engine {
 public:
  // Loads DIR/config.json and the weights: safetensors (single file or shards) or
  // pytorch_model.bin; any-precision checkpoints (an "anyprec" block in config.json, ours or the
  // Any-Precision LLM packer's) included. Every tensor's shape is checked against the config;
  // errors name the file and the tensor.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const std::string& model_dir);
  ~LlamaModel() override;

  // Engine (engine.h), with what is particular to this engine:
  const models::LlamaConfig& config() const override;
  Device device() const override { return Device::kCpu; }
  // Largest sequence length the cache holds: max_position_embeddings.
  int max_context() const override;
  int cache_len() const override;
  void Reset() override;
  int precision() const override;
  int min_precision() const override;
  int max_precision() const override;
  absl::Status SetPrecision(int bits) override;
  // Speed over memory for small models on the CPU: keeps a float32 copy of every quantized weight
  // at every precision, so the projections run as dense products (same values as reading the
  // planes). Returns the bytes it holds: (P - S + 1) x 4 bytes per weight. Switching stays free.
  int64_t CacheDequantizedWeights();

  // Sequence slots (Engine): n >= 1 caches, each its own sequence, so DecodeBatch (one DecodeStep
  // per row: this engine does not batch them) and CopySequence work; the selected slot keeps its
  // sequence when it is below n, and is otherwise slot 0. Starts at 1. Fails for n < 1. A slot's
  // cache grows on demand, like the first one's. The branches below continue the selected slot.
  absl::Status SetMaxBatch(int n);
  int max_batch() const override;
  int sequence() const override;
  absl::Status SelectSequence(int slot) override;
  // O(layers * kv_dim * length) copy on the host.
  absl::Status CopySequence(int from, int to, int length) override;

  // Runs `tokens` at positions [cache_len, cache_len + n) and appends their K/V to the cache.
  // Writes logits of the last position ([vocab]) or, with all_positions, of every position
  // ([n, vocab], row-major) into `logits`. Fails (cache unchanged) when the tokens do not fit the
  // context or an id is outside the vocabulary. Cost: O(n * params + n * cache_len * layers *
  // q_dim).
  absl::Status Forward(absl::Span<const int> tokens, bool all_positions,
                       std::vector<float>* logits);
  // Engine: Forward of the last position, then the argmax on the host.
  absl::Status Prefill(absl::Span<const int> tokens, std::vector<float>* last_logits,
                       int* argmax) override;
  absl::Status DecodeStep(int token, std::vector<float>* logits, int* argmax) override;

  // Branches: batched continuations of the cached sequence (switch-point labelling decodes several
  // at once). Branch i starts from the first prefix_lens[i] cached tokens (1 <= len <= cache_len);
  // the main cache is left as it is. Copies the prefixes once: O(B * cache capacity * kv_dim)
  // memory per layer. Starting again replaces the previous branches.
  absl::Status StartBranches(absl::Span<const int> prefix_lens);
  // Feeds tokens[i] to branch i at its own next position, all at the current precision, as one
  // batch; logits: [B, vocab] row-major.
  absl::Status ForwardBranches(absl::Span<const int> tokens, std::vector<float>* logits);
  // Keeps only the branches at `indices` (strictly increasing), renumbered 0..n-1 in that order:
  // finished branches stop costing compute and context. O(n * capacity * kv_dim) copy per layer.
  absl::Status KeepBranches(absl::Span<const int> indices);
  int num_branches() const;
  int branch_len(int i) const;

  // The last layer's cache in place: float32, [kv_heads, capacity, head_dim] (capacity grows with
  // the sequence, so the view is valid until the next Forward).
  KvView LastLayerKv() const override;
  void CopyLastLayerKv(std::vector<float>* k, std::vector<float>* v) const override;

  // Sum of -log p(token[i] | tokens[< i]) for i = 1..n-1 over one independent sequence (the cache
  // is neither used nor changed); *predicted = n - 1. For perplexity. Cost: one full forward.
  absl::StatusOr<double> SequenceNll(absl::Span<const int> tokens, int64_t* predicted);

  // Diagonal empirical Fisher of every projection weight: sum over `sequences` of (dL/dW)^2, L the
  // mean next-token cross-entropy of a sequence. Keys "model.layers.<l>.<module>", values [N*K]
  // row-major. Full-precision models only. `progress` gets the number of sequences done.
  // Cost: one forward + backward per sequence.
  absl::StatusOr<std::map<std::string, std::vector<float>>> FisherSensitivity(
      const std::vector<std::vector<int>>& sequences,
      const std::function<void(int)>& progress = {});

 private:
  struct Impl;
  explicit LlamaModel(std::unique_ptr<Impl> impl);
  absl::Status CheckTokens(absl::Span<const int> tokens, int start) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::inference
