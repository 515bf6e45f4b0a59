// Llama-family model configuration, parsed from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

enum class RopeScalingType { kNone, kLinear, kLlama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct LlamaConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;  // defaults to num_attention_heads
  int head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int vocab_size = 0;
  int max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  int bos_token_id = 1;
  std::vector<int> eos_token_ids;  // empty: no EOS stop
  std::string torch_dtype = "float32";

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
};

// One of the seven projections of a decoder layer: "self_attn.q_proj", ... with its shape.
struct ProjectionShape {
  std::string module;
  int64_t out_features = 0, in_features = 0;
};

// The projections in the Any-Precision LLM packer's order: q, k, v, o, gate, up, down. The one list
// that loaders, the quantizer and the sensitivity pass share.
std::vector<ProjectionShape> LlamaProjections(const LlamaConfig& config);

// Parses config.json text; `source` names the file in error messages. Refuses architectures that
// are not Llama-family (LlamaForCausalLM, MistralForCausalLM without sliding window) and
// inconsistent sizes.
absl::StatusOr<LlamaConfig> ParseLlamaConfig(absl::string_view json_text, absl::string_view source);

// Fills the defaults every source shares (num_key_value_heads = num_attention_heads, head_dim =
// hidden_size / num_attention_heads when 0) and checks the sizes the engines rely on: positive
// sizes, key/value heads dividing the heads, an even head_dim, positive context, rms_norm_eps and
// rope_theta. Errors read "<source>: field \"<name>\" <problem>", where `field_name` maps a
// config.json field name to the name the source uses (identity when null).
absl::Status FinishLlamaConfig(LlamaConfig* config, absl::string_view source,
                               std::string (*field_name)(absl::string_view) = nullptr);

// Reads and parses DIR/config.json, or the metadata of a GGUF file (`model_dir` names a .gguf
// file; see models/gguf_model.h).
absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir);

// Serializes to Hugging Face config.json form (the fields above), for checkpoints we write.
std::string LlamaConfigToJson(const LlamaConfig& config);

}  // namespace pmpd::models
