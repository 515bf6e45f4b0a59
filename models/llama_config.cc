#include "models/llama_config.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/gguf_model.h"

namespace pmpd::models {
namespace {

using json = nlohmann::json;

// Field readers: each error names the file and the field.
class Reader {
 public:
  Reader(const json& j, absl::string_view source) : j_(j), source_(source) {}

  absl::Status Int(const char* key, int* out, bool required) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) {
      if (required) return Error(key, "is missing (required)");
      return absl::OkStatus();
    }
    if (!it->is_number_integer())
      return Error(key, absl::StrCat("must be an integer, got ", it->dump()));
    const int64_t v = it->get<int64_t>();
    if (v < 0 || v > (int64_t{1} << 30)) return Error(key, absl::StrCat("is out of range: ", v));
    *out = static_cast<int>(v);
    return absl::OkStatus();
  }

  absl::Status Double(const json& obj, const char* key, double* out) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_number()) return Error(key, absl::StrCat("must be a number, got ", it->dump()));
    *out = it->get<double>();
    return absl::OkStatus();
  }
  absl::Status Double(const char* key, double* out) const { return Double(j_, key, out); }

  absl::Status Bool(const char* key, bool* out) const {
    auto it = j_.find(key);
    if (it == j_.end() || it->is_null()) return absl::OkStatus();
    if (!it->is_boolean())
      return Error(key, absl::StrCat("must be true or false, got ", it->dump()));
    *out = it->get<bool>();
    return absl::OkStatus();
  }

  absl::Status Error(absl::string_view key, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": field \"", key, "\" ", what));
  }

 private:
  const json& j_;
  absl::string_view source_;
};

absl::Status ParseRope(const json& obj, const Reader& r, absl::string_view field, LlamaConfig* c) {
  if (!obj.is_object())
    return r.Error(field, absl::StrCat("must be an object or null, got ", obj.dump()));
  std::string type = "default";
  for (const char* key : {"rope_type", "type"}) {
    auto it = obj.find(key);
    if (it != obj.end() && it->is_string()) {
      type = it->get<std::string>();
      break;
    }
  }
  if (auto st = r.Double(obj, "rope_theta", &c->rope_theta); !st.ok()) return st;
  RopeScaling& s = c->rope_scaling;
  if (type == "default") {
    s.type = RopeScalingType::kNone;
    return absl::OkStatus();
  }
  if (type != "linear" && type != "llama3") {
    return r.Error(
        field, absl::StrCat("has rope type \"", type, "\"; supported: default, linear, llama3"));
  }
  s.type = type == "linear" ? RopeScalingType::kLinear : RopeScalingType::kLlama3;
  if (obj.find("factor") == obj.end()) return r.Error(field, "needs \"factor\"");
  if (auto st = r.Double(obj, "factor", &s.factor); !st.ok()) return st;
  if (!(s.factor >= 1.0))
    return r.Error(field, absl::StrCat("factor must be >= 1, got ", s.factor));
  if (s.type == RopeScalingType::kLlama3) {
    for (const char* key :
         {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
      if (obj.find(key) == obj.end())
        return r.Error(field, absl::StrCat("(llama3) needs \"", key, "\""));
    }
    double orig = 0;
    if (auto st = r.Double(obj, "low_freq_factor", &s.low_freq_factor); !st.ok()) return st;
    if (auto st = r.Double(obj, "high_freq_factor", &s.high_freq_factor); !st.ok()) return st;
    if (auto st = r.Double(obj, "original_max_position_embeddings", &orig); !st.ok()) return st;
    s.original_max_position_embeddings = static_cast<int>(orig);
    if (!(s.high_freq_factor > s.low_freq_factor) || s.original_max_position_embeddings <= 0) {
      return r.Error(field,
                     "(llama3) needs high_freq_factor > low_freq_factor and a positive "
                     "original_max_position_embeddings");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaConfig> ParseLlamaConfig(absl::string_view json_text,
                                             absl::string_view source) {
  if (absl::Status st = CheckNoNulByte(json_text, source); !st.ok()) return st;
  json j = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON"));
  if (!j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(source, ": top level must be a JSON object"));
  Reader r(j, source);
  LlamaConfig c;

  static const char* kSupported[] = {"LlamaForCausalLM", "MistralForCausalLM"};
  auto arch = j.find("architectures");
  if (arch != j.end() && !arch->is_null()) {
    if (!arch->is_array() || arch->empty() || !(*arch)[0].is_string()) {
      return r.Error("architectures", "must be a non-empty list of strings");
    }
    c.architecture = (*arch)[0].get<std::string>();
  }
  if (auto mt = j.find("model_type"); mt != j.end() && mt->is_string())
    c.model_type = mt->get<std::string>();
  bool ok = false;
  for (const char* a : kSupported) ok |= c.architecture == a;
  if (c.architecture.empty()) ok = c.model_type == "llama" || c.model_type == "mistral";
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": unsupported architecture \"",
        c.architecture.empty() ? c.model_type : c.architecture,
        "\"; pmpd supports Llama-family models (LlamaForCausalLM, MistralForCausalLM)"));
  }

  for (auto [key, out] : {std::pair<const char*, int*>{"hidden_size", &c.hidden_size},
                          {"intermediate_size", &c.intermediate_size},
                          {"num_hidden_layers", &c.num_hidden_layers},
                          {"num_attention_heads", &c.num_attention_heads},
                          {"vocab_size", &c.vocab_size}}) {
    if (auto st = r.Int(key, out, /*required=*/true); !st.ok()) return st;
  }
  if (auto st = r.Int("num_key_value_heads", &c.num_key_value_heads, false); !st.ok()) return st;
  if (auto st = r.Int("head_dim", &c.head_dim, false); !st.ok()) return st;
  if (auto st = r.Int("max_position_embeddings", &c.max_position_embeddings, false); !st.ok())
    return st;
  if (auto st = r.Double("rms_norm_eps", &c.rms_norm_eps); !st.ok()) return st;
  if (auto st = r.Double("rope_theta", &c.rope_theta); !st.ok()) return st;
  if (auto st = r.Bool("tie_word_embeddings", &c.tie_word_embeddings); !st.ok()) return st;
  if (auto st = r.Int("bos_token_id", &c.bos_token_id, false); !st.ok()) return st;

  if (auto it = j.find("eos_token_id"); it != j.end() && !it->is_null()) {
    // Read wide and range-checked: -5 or 2^64 - 1 narrowed to an int was accepted as some id.
    auto eos = [&](const json& e) -> absl::Status {
      if (!e.is_number_integer())
        return r.Error("eos_token_id", "must be an integer or a list of integers");
      if (e.is_number_unsigned()
              ? e.get<uint64_t>() > (uint64_t{1} << 30)
              : (e.get<int64_t>() < 0 || e.get<int64_t>() > (int64_t{1} << 30))) {
        return r.Error("eos_token_id", absl::StrCat("is out of range: ", e.dump()));
      }
      c.eos_token_ids.push_back(static_cast<int>(e.get<int64_t>()));
      return absl::OkStatus();
    };
    if (it->is_array()) {
      for (const auto& e : *it) {
        if (auto st = eos(e); !st.ok()) return st;
      }
    } else if (auto st = eos(*it); !st.ok()) {
      return st;
    }
  }
  if (auto it = j.find("torch_dtype"); it != j.end() && it->is_string())
    c.torch_dtype = it->get<std::string>();
  if (auto it = j.find("dtype"); it != j.end() && it->is_string())
    c.torch_dtype = it->get<std::string>();
  if (auto it = j.find("hidden_act");
      it != j.end() && it->is_string() && it->get<std::string>() != "silu") {
    return r.Error("hidden_act",
                   absl::StrCat("is \"", it->get<std::string>(), "\"; only \"silu\" is supported"));
  }
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    bool b = false;
    if (auto st = r.Bool(key, &b); !st.ok()) return st;
    if (b) return r.Error(key, "is true; biases in Llama projections are not supported");
  }
  // Rotary parameters: transformers < 5 writes rope_theta + rope_scaling, >= 5 writes
  // rope_parameters.
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) continue;
    if (auto st = ParseRope(*it, r, key, &c); !st.ok()) return st;
  }
  if (auto st = FinishLlamaConfig(&c, source); !st.ok()) return st;
  return c;
}

absl::Status FinishLlamaConfig(LlamaConfig* config, absl::string_view source,
                               std::string (*field_name)(absl::string_view)) {
  LlamaConfig& c = *config;
  auto error = [&](absl::string_view key, absl::string_view what) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": field \"",
                     field_name != nullptr ? field_name(key) : std::string(key), "\" ", what));
  };
  for (auto [key, v] : {std::pair<const char*, int>{"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"vocab_size", c.vocab_size}}) {
    if (v <= 0) return error(key, "must be positive");
  }
  if (c.num_key_value_heads < 0) return error("num_key_value_heads", "must be positive");
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  if (c.num_attention_heads % c.num_key_value_heads != 0) {
    return error("num_key_value_heads",
                 absl::StrCat("(", c.num_key_value_heads, ") must divide num_attention_heads (",
                              c.num_attention_heads, ")"));
  }
  if (c.head_dim < 0) return error("head_dim", "must be positive");
  if (c.head_dim == 0) {
    if (c.hidden_size % c.num_attention_heads != 0) {
      return error("hidden_size",
                   "must be divisible by num_attention_heads when head_dim is absent");
    }
    c.head_dim = c.hidden_size / c.num_attention_heads;
  }
  if (c.head_dim % 2 != 0) return error("head_dim", "must be even for rotary embeddings");
  if (c.max_position_embeddings <= 0) return error("max_position_embeddings", "must be positive");
  if (!(c.rms_norm_eps > 0)) return error("rms_norm_eps", "must be positive");
  if (!(c.rope_theta > 0)) return error("rope_theta", "must be positive");
  return absl::OkStatus();
}

absl::StatusOr<LlamaConfig> LoadLlamaConfig(const std::string& model_dir) {
  if (IsGgufPath(model_dir)) {
    auto gguf = GgufFile::Open(model_dir);
    if (!gguf.ok()) return gguf.status();
    return LlamaConfigFromGguf(**gguf);
  }
  const std::string path = JoinPath(model_dir, "config.json");
  if (!FileExists(path)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": missing (expected a Hugging Face config.json in ", model_dir, ")"));
  }
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  return ParseLlamaConfig(*text, path);
}

std::vector<ProjectionShape> LlamaProjections(const LlamaConfig& c) {
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  return {{"self_attn.q_proj", c.q_dim(), H},
          {"self_attn.k_proj", c.kv_dim(), H},
          {"self_attn.v_proj", c.kv_dim(), H},
          {"self_attn.o_proj", H, c.q_dim()},
          {"mlp.gate_proj", I, H},
          {"mlp.up_proj", I, H},
          {"mlp.down_proj", H, I}};
}

std::string LlamaConfigToJson(const LlamaConfig& c) {
  json j;
  j["architectures"] = {c.architecture.empty() ? "LlamaForCausalLM" : c.architecture};
  j["model_type"] = c.model_type.empty() ? "llama" : c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_hidden_layers;
  j["num_attention_heads"] = c.num_attention_heads;
  j["num_key_value_heads"] = c.num_key_value_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1)
    j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty())
    j["eos_token_id"] = c.eos_token_ids;
  j["torch_dtype"] = c.torch_dtype;
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kNone) {
    j["rope_scaling"] = nullptr;
  } else if (s.type == RopeScalingType::kLinear) {
    j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", s.factor}};
  } else {
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", s.factor},
                         {"low_freq_factor", s.low_freq_factor},
                         {"high_freq_factor", s.high_freq_factor},
                         {"original_max_position_embeddings", s.original_max_position_embeddings}};
  }
  return j.dump(2);
}

}  // namespace pmpd::models
