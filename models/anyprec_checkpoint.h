// Any-precision checkpoints, two layouts with one in-memory form (AnyprecMatrix):
//  - ours: config.json with an "anyprec" block + model.safetensors holding, for every quantized
//    module M, `M.qweight` I32 [P, N, ceil(K/32)] and `M.lut<b>` F16 [N, 2^b] for b = S..P, plus
//    the unquantized tensors (embeddings, norms, lm_head) as they were. K need not be a multiple of
//    32 (the planes are padded). Documented in docs/anyprec-format.md.
//  - the public Any-Precision LLM packer's: the same tensors in pytorch_model.bin (torch zip), with
//    K % 32 == 0 required.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/anyprec_quantizer.h"
#include "models/llama_config.h"
#include "models/safetensors.h"

namespace pmpd::models {

// The "anyprec" block of config.json.
struct AnyprecInfo {
  int seed_bits = 0;    // S
  int parent_bits = 0;  // P
  std::string model_name = "model";
  std::string layers_name = "layers";
  std::vector<std::string> module_names;  // e.g. "self_attn.q_proj"

  bool Supports(int bits) const { return bits >= seed_bits && bits <= parent_bits; }
};

// The 7 Llama projections, in the packer's order.
const std::vector<std::string>& LlamaQuantizedModules();

// Reads the "anyprec" block of DIR/config.json; nullopt when there is none (a plain model) and for
// a GGUF file.
absl::StatusOr<std::optional<AnyprecInfo>> LoadAnyprecInfo(const std::string& model_dir);

// Any source of named tensors: a safetensors checkpoint or a torch state dict.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual absl::StatusOr<const TensorView*> Find(const std::string& name) const = 0;
  virtual std::vector<std::string> Names() const = 0;
  // "DIR/model.safetensors" or "DIR/pytorch_model.bin", for messages.
  virtual const std::string& description() const = 0;
  virtual bool requires_k_multiple_of_32() const { return false; }
  // Drops a tensor's pages from the resident set where it lives in a memory-mapped file (it reads
  // back when touched again): streaming readers call it after each tensor so that reading a whole
  // checkpoint does not keep it resident. No-op for tensors held in memory.
  virtual void ReleasePages(const TensorView& /*tensor*/) const {}
};

// model.safetensors (or shards) if present, else pytorch_model.bin; for a GGUF file (IsGgufPath)
// its tensors under Hugging Face names, dequantized to F32 (OpenGgufWeights).
// Both refuse weights holding more layers than the config's num_hidden_layers. The second takes the
// config the caller already loaded (the first loads it).
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& model_dir);
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeights(const std::string& model_dir,
                                                          const LlamaConfig& config);

// The tensor `name` of `source`, its shape checked against `shape` (what config.json implies): an
// error naming the file, the tensor and both shapes otherwise.
absl::StatusOr<const TensorView*> FindWithShape(const WeightSource& source, const std::string& name,
                                                const std::vector<int64_t>& shape);

// Reads module `prefix` (e.g. "model.layers.0.mlp.down_proj") checking every shape against
// out_features x in_features and the precisions of `info`.
absl::StatusOr<AnyprecMatrix> LoadAnyprecMatrix(const WeightSource& source,
                                                const std::string& prefix, const AnyprecInfo& info,
                                                int out_features, int in_features);

// The tensors of one quantized module in our layout.
std::vector<TensorToWrite> AnyprecMatrixTensors(const std::string& prefix, const AnyprecMatrix& m);

// Writes config.json (config + "anyprec" block) atomically.
absl::Status WriteAnyprecConfig(const std::string& dir, const LlamaConfig& config,
                                const AnyprecInfo& info);

}  // namespace pmpd::models
