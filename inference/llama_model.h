// CPU reference Llama forward pass on LibTorch (float32 compute; 16-bit weights are upcast at load).
// The header is LibTorch-free on purpose: callers see token ids in and float logits out.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "models/llama_config.h"

namespace pmpd::inference {

// One model plus its KV cache (batch 1). Not thread-safe; one sequence at a time.
class LlamaModel {
 public:
  // Loads DIR/config.json and the safetensors weights (single file or shards). Every tensor's shape
  // is checked against the config; errors name the file and the tensor.
  static absl::StatusOr<std::unique_ptr<LlamaModel>> Load(const std::string& model_dir);
  ~LlamaModel();

  const models::LlamaConfig& config() const;
  // Largest sequence length the cache holds: max_position_embeddings.
  int max_context() const;
  // Tokens currently in the KV cache.
  int cache_len() const;
  // Drops the cached sequence; the next Forward starts at position 0. O(1).
  void Reset();

  // Runs `tokens` at positions [cache_len, cache_len + n) and appends their K/V to the cache.
  // Writes logits of the last position ([vocab]) or, with all_positions, of every position
  // ([n, vocab], row-major) into `logits`. Fails (cache unchanged) when the tokens do not fit the
  // context or an id is outside the vocabulary. Cost: O(n * params + n * cache_len * layers * q_dim).
  absl::Status Forward(absl::Span<const int> tokens, bool all_positions, std::vector<float>* logits);

 private:
  struct Impl;
  explicit LlamaModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::inference
