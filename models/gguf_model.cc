#include "models/gguf_model.h"

#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace pmpd::models {
namespace {

constexpr int64_t kMaxSize = int64_t{1} << 30;  // the bound ParseLlamaConfig puts on sizes

// config.json field -> the GGUF key it comes from, for FinishLlamaConfig's messages.
std::string GgufFieldName(absl::string_view hf) {
  static const std::map<std::string, std::string, std::less<>> kKeys = {
      {"hidden_size", "llama.embedding_length"},
      {"intermediate_size", "llama.feed_forward_length"},
      {"num_hidden_layers", "llama.block_count"},
      {"num_attention_heads", "llama.attention.head_count"},
      {"num_key_value_heads", "llama.attention.head_count_kv"},
      {"head_dim", "llama.rope.dimension_count"},
      {"vocab_size", "llama.vocab_size"},
      {"max_position_embeddings", "llama.context_length"},
      {"rms_norm_eps", "llama.attention.layer_norm_rms_epsilon"},
      {"rope_theta", "llama.rope.freq_base"},
  };
  auto it = kKeys.find(hf);
  return it != kKeys.end() ? it->second : std::string(hf);
}

// An integer metadata value in [lo, hi] into *out; absent: NotFound when required, else *out kept.
absl::Status GetBoundedInt(const GgufFile& f, const std::string& key, bool required, int64_t lo,
                           int64_t hi, int* out) {
  if (!f.Has(key)) {
    if (required)
      return absl::NotFoundError(absl::StrCat(f.path(), ": missing metadata key \"", key, "\""));
    return absl::OkStatus();
  }
  auto v = f.GetInt(key);
  if (!v.ok()) return v.status();
  if (*v < lo || *v > hi) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": metadata \"", key, "\" = ", *v,
                                                   " is out of range [", lo, ", ", hi, "]"));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status GetOptionalFloat(const GgufFile& f, const std::string& key, double* out) {
  if (!f.Has(key)) return absl::OkStatus();
  auto v = f.GetFloat(key);
  if (!v.ok()) return v.status();
  *out = *v;
  return absl::OkStatus();
}

// llama.cpp's tensor names -> Hugging Face's, for the tensors of a decoder layer.
const std::map<std::string, std::string, std::less<>>& LayerTensorNames() {
  static const auto* kNames = new std::map<std::string, std::string, std::less<>>{
      {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  return *kNames;
}

// "blk.<n>.<part>.<suffix>" -> {n, part, suffix}; nullopt for other names.
struct LayerTensorName {
  int layer;
  std::string part, suffix;
};
std::optional<LayerTensorName> ParseLayerName(const std::string& name) {
  std::vector<std::string> parts = absl::StrSplit(name, '.');
  int layer = 0;
  if (parts.size() != 4 || parts[0] != "blk" || !absl::SimpleAtoi(parts[1], &layer) || layer < 0) {
    return std::nullopt;
  }
  return LayerTensorName{layer, parts[2], parts[3]};
}

// The Hugging Face name of a GGUF tensor; nullopt for tensors a Llama does not use.
std::optional<std::string> HfName(const std::string& gguf_name) {
  if (gguf_name == "token_embd.weight") return "model.embed_tokens.weight";
  if (gguf_name == "output_norm.weight") return "model.norm.weight";
  if (gguf_name == "output.weight") return "lm_head.weight";
  auto p = ParseLayerName(gguf_name);
  if (!p || p->suffix != "weight") return std::nullopt;
  auto it = LayerTensorNames().find(p->part);
  if (it == LayerTensorNames().end()) return std::nullopt;
  return absl::StrCat("model.layers.", p->layer, ".", it->second, ".weight");
}

// llama.cpp's converter stores the rows of q_proj (heads = n_head) and k_proj (n_head_kv) of each
// head interleaved for its rotary layout: stored row (h, r, t) = Hugging Face row (h, t, r), with
// t in {0, 1} and r < rows_per_head / 2, i.e.
//   w.reshape(heads, 2, rows_per_head / 2, cols).swapaxes(1, 2).reshape(rows, cols).
// This undoes it: out row h*R + t*R/2 + r = in row h*R + 2r + t, with R = rows_per_head.
void UnpermuteRows(const float* in, float* out, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t per_head = rows / heads, half = per_head / 2;
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t t = 0; t < 2; ++t) {
      for (int64_t r = 0; r < half; ++r) {
        std::memcpy(out + (h * per_head + t * half + r) * cols,
                    in + (h * per_head + 2 * r + t) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
      }
    }
  }
}

class GgufWeights : public WeightSource {
 public:
  struct Entry {
    const GgufTensorInfo* info;
    int64_t heads;  // > 0: undo the converter's Q/K row permutation over this many heads
  };

  GgufWeights(std::unique_ptr<GgufFile> file, std::map<std::string, Entry> entries)
      : file_(std::move(file)), entries_(std::move(entries)) {}

  absl::StatusOr<const TensorView*> Find(const std::string& name) const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = cache_.find(name); it != cache_.end()) return &it->second->view;
    auto e = entries_.find(name);
    if (e == entries_.end()) {
      return absl::NotFoundError(absl::StrCat(file_->path(), ": missing tensor \"", name, "\""));
    }
    const GgufTensorInfo& t = *e->second.info;
    auto cached = std::make_unique<Cached>();
    cached->data.resize(static_cast<size_t>(t.numel()));
    if (auto st = file_->DequantizeF32(t, cached->data.data()); !st.ok()) return st;
    if (e->second.heads > 0) {
      std::vector<float> permuted = std::move(cached->data);
      cached->data.resize(permuted.size());
      UnpermuteRows(permuted.data(), cached->data.data(), t.ne[1], t.ne[0], e->second.heads);
    }
    TensorView& v = cached->view;
    v.name = name;
    v.dtype = DType::kF32;
    v.shape = t.shape();
    v.data = reinterpret_cast<const uint8_t*>(cached->data.data());
    v.nbytes = cached->data.size() * sizeof(float);
    v.file = file_->path();
    const TensorView* out = &v;
    cache_.emplace(name, std::move(cached));
    return out;
  }

  std::vector<std::string> Names() const override {
    std::vector<std::string> names;
    for (const auto& [name, e] : entries_) names.push_back(name);
    return names;
  }

  const std::string& description() const override { return file_->path(); }

 private:
  struct Cached {
    std::vector<float> data;
    TensorView view;
  };
  std::unique_ptr<GgufFile> file_;
  std::map<std::string, Entry> entries_;
  mutable std::mutex mu_;
  mutable std::map<std::string, std::unique_ptr<Cached>> cache_;  // guarded by mu_
};

// A special-token id of the vocabulary: absent keeps *out (-1); present must be a token.
absl::Status GetTokenId(const GgufFile& f, const std::string& key, size_t n_tokens, int* out) {
  if (!f.Has(key)) return absl::OkStatus();
  auto v = f.GetInt(key);
  if (!v.ok()) return v.status();
  if (*v < 0 || static_cast<uint64_t>(*v) >= n_tokens) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": metadata \"", key, "\" = ", *v,
                                                   " is not a token id (the vocabulary has ",
                                                   n_tokens, " tokens)"));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& f) {
  auto arch = f.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch != "llama") {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": architecture \"", *arch, "\" is not supported (llama only)"));
  }
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.torch_dtype = "float32";
  for (auto [key, out] : {std::pair<const char*, int*>{"llama.block_count", &c.num_hidden_layers},
                          {"llama.embedding_length", &c.hidden_size},
                          {"llama.feed_forward_length", &c.intermediate_size},
                          {"llama.attention.head_count", &c.num_attention_heads},
                          {"llama.context_length", &c.max_position_embeddings}}) {
    if (auto st = GetBoundedInt(f, key, /*required=*/true, 1, kMaxSize, out); !st.ok()) return st;
  }
  if (auto st = GetBoundedInt(f, "llama.attention.head_count_kv", false, 1, kMaxSize,
                              &c.num_key_value_heads);
      !st.ok()) {
    return st;
  }
  int experts = 0;
  if (auto st = GetBoundedInt(f, "llama.expert_count", false, 0, kMaxSize, &experts); !st.ok())
    return st;
  if (experts > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": metadata \"llama.expert_count\" = ", experts,
                     ": mixture-of-experts models are not supported"));
  }

  // Head size: attention.key_length when given, else rope.dimension_count, else hidden / heads.
  int key_length = 0, value_length = 0, rope_dims = 0;
  if (auto st = GetBoundedInt(f, "llama.attention.key_length", false, 1, kMaxSize, &key_length);
      !st.ok()) {
    return st;
  }
  if (auto st = GetBoundedInt(f, "llama.attention.value_length", false, 1, kMaxSize, &value_length);
      !st.ok()) {
    return st;
  }
  if (auto st = GetBoundedInt(f, "llama.rope.dimension_count", false, 1, kMaxSize, &rope_dims);
      !st.ok()) {
    return st;
  }
  c.head_dim = key_length > 0 ? key_length : rope_dims;
  if (value_length > 0 && c.head_dim > 0 && value_length != c.head_dim) {
    return absl::InvalidArgumentError(absl::StrCat(f.path(), ": attention.value_length ",
                                                   value_length, " differs from the key length ",
                                                   c.head_dim, "; not supported"));
  }

  if (f.Has("llama.vocab_size")) {
    if (auto st = GetBoundedInt(f, "llama.vocab_size", true, 1, kMaxSize, &c.vocab_size); !st.ok())
      return st;
  } else if (f.Has("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int>(f.metadata().at("tokenizer.ggml.tokens").size());
  } else {
    return absl::NotFoundError(absl::StrCat(
        f.path(),
        ": missing metadata key \"llama.vocab_size\" (and no \"tokenizer.ggml.tokens\" to count)"));
  }

  if (!f.Has("llama.attention.layer_norm_rms_epsilon")) {
    return absl::NotFoundError(absl::StrCat(
        f.path(), ": missing metadata key \"llama.attention.layer_norm_rms_epsilon\""));
  }
  if (auto st = GetOptionalFloat(f, "llama.attention.layer_norm_rms_epsilon", &c.rms_norm_eps);
      !st.ok()) {
    return st;
  }
  c.rope_theta = 10000.0;
  if (auto st = GetOptionalFloat(f, "llama.rope.freq_base", &c.rope_theta); !st.ok()) return st;

  // Rotary scaling: none or linear (older files: rope.scale_linear).
  std::string scaling = "none";
  double factor = 1.0;
  if (f.Has("llama.rope.scaling.type")) {
    auto t = f.GetString("llama.rope.scaling.type");
    if (!t.ok()) return t.status();
    scaling = *t;
    if (auto st = GetOptionalFloat(f, "llama.rope.scaling.factor", &factor); !st.ok()) return st;
  } else if (f.Has("llama.rope.scale_linear")) {
    if (auto st = GetOptionalFloat(f, "llama.rope.scale_linear", &factor); !st.ok()) return st;
    scaling = factor == 1.0 ? "none" : "linear";
  }
  if (scaling == "linear") {
    if (!(factor >= 1.0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.path(), ": linear rope scaling factor must be >= 1, got ", factor));
    }
    c.rope_scaling.type = RopeScalingType::kLinear;
    c.rope_scaling.factor = factor;
  } else if (scaling != "none") {
    return absl::InvalidArgumentError(absl::StrCat(f.path(),
                                                   ": metadata \"llama.rope.scaling.type\" is \"",
                                                   scaling, "\"; supported: none, linear"));
  }
  if (f.FindTensor("rope_freqs.weight") != nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        f.path(),
        ": tensor \"rope_freqs.weight\" (llama3-style rope frequency factors) is not supported"));
  }

  c.tie_word_embeddings = f.FindTensor("output.weight") == nullptr;
  constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max();
  if (auto st = GetBoundedInt(f, "tokenizer.ggml.bos_token_id", false, 0, kMaxId, &c.bos_token_id);
      !st.ok()) {
    return st;
  }
  int eos = -1;
  if (auto st = GetBoundedInt(f, "tokenizer.ggml.eos_token_id", false, 0, kMaxId, &eos); !st.ok())
    return st;
  if (eos >= 0) c.eos_token_ids = {eos};
  if (auto st = FinishLlamaConfig(&c, f.path(), &GgufFieldName); !st.ok()) return st;
  if (c.head_dim == rope_dims || rope_dims == 0) return c;
  return absl::InvalidArgumentError(absl::StrCat(f.path(), ": llama.rope.dimension_count ",
                                                 rope_dims, " is not the head size ", c.head_dim,
                                                 "; partial rotary embeddings are not supported"));
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenGgufWeights(const std::string& path) {
  auto file = GgufFile::Open(path);
  if (!file.ok()) return file.status();
  auto config = LlamaConfigFromGguf(**file);
  if (!config.ok()) return config.status();
  std::map<std::string, GgufWeights::Entry> entries;
  for (const GgufTensorInfo& t : (*file)->tensors()) {
    auto hf = HfName(t.name);
    if (!hf) {
      auto p = ParseLayerName(t.name);
      if (p && p->suffix == "bias" && LayerTensorNames().count(p->part)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": tensor \"", t.name, "\": biases in Llama projections are not supported"));
      }
      continue;  // not part of a Llama (e.g. rope_freqs is refused by the config above)
    }
    int64_t heads = 0;
    if (absl::EndsWith(*hf, ".q_proj.weight")) heads = config->num_attention_heads;
    if (absl::EndsWith(*hf, ".k_proj.weight")) heads = config->num_key_value_heads;
    if (heads > 0 && (t.ne.size() != 2 || t.ne[1] % (2 * heads) != 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor \"", t.name, "\" has shape [", absl::StrJoin(t.shape(), ", "),
          "]; expected 2 dimensions, ", "the rows a multiple of 2 x ", heads, " heads"));
    }
    entries.emplace(*hf, GgufWeights::Entry{&t, heads});
  }
  return std::unique_ptr<WeightSource>(new GgufWeights(std::move(*file), std::move(entries)));
}

absl::StatusOr<BpeVocab> BpeVocabFromGguf(const GgufFile& f) {
  auto missing = [&](const char* key) {
    return absl::NotFoundError(
        absl::StrCat(f.path(), ": missing tokenizer metadata \"", key, "\""));
  };
  if (!f.Has("tokenizer.ggml.model")) return missing("tokenizer.ggml.model");
  auto model = f.GetString("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  if (*model != "gpt2") {
    return absl::UnimplementedError(absl::StrCat(
        f.path(), ": tokenizer.ggml.model is \"", *model,
        "\"; only byte-level BPE (\"gpt2\") GGUF tokenizers are read",
        *model == "llama" ? " (SentencePiece \"llama\" GGUF tokenizers are not supported yet)"
                          : ""));
  }
  BpeVocab v;
  if (!f.Has("tokenizer.ggml.tokens")) return missing("tokenizer.ggml.tokens");
  auto tokens = f.GetStringArray("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  v.tokens = std::move(*tokens);
  if (v.tokens.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(f.path(), ": metadata \"tokenizer.ggml.tokens\" is empty"));
  }
  if (!f.Has("tokenizer.ggml.merges")) return missing("tokenizer.ggml.merges");
  auto merges = f.GetStringArray("tokenizer.ggml.merges");
  if (!merges.ok()) return merges.status();
  v.merges.reserve(merges->size());
  for (size_t k = 0; k < merges->size(); ++k) {
    // "left right": byte-level spellings hold no raw space, so the one space is the separator.
    // (llama.cpp searches from index 1 too, so a first part can never be empty.)
    const std::string& m = (*merges)[k];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos || sp + 1 == m.size() || m.find(' ', sp + 1) != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.path(), ": metadata \"tokenizer.ggml.merges\"[", k, "] = \"", m,
                       "\" is not two tokens separated by one space"));
    }
    v.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  if (f.Has("tokenizer.ggml.token_type")) {
    auto types = f.GetIntArray("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    if (types->size() != v.tokens.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(f.path(), ": metadata \"tokenizer.ggml.token_type\" has ", types->size(),
                       " entries for ", v.tokens.size(), " tokens"));
    }
    for (size_t id = 0; id < types->size(); ++id) {
      // llama.cpp's token types: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
      const int64_t t = (*types)[id];
      if (t == 3 || t == 4) {
        v.added_ids.push_back(static_cast<int>(id));
        v.added_special.push_back(t == 3);
      }
    }
  }
  std::string pre = "gpt2";
  if (f.Has("tokenizer.ggml.pre")) {
    auto p = f.GetString("tokenizer.ggml.pre");
    if (!p.ok()) return p.status();
    pre = *p;
  }
  auto regexes = PreTokenizerRegexes(pre);
  if (!regexes.ok()) {
    return absl::Status(
        regexes.status().code(),
        absl::StrCat(f.path(), ": tokenizer.ggml.pre \"", pre, "\": ", regexes.status().message()));
  }
  v.split_regexes = std::move(*regexes);
  const size_t n = v.tokens.size();
  for (auto [key, out] : {std::pair<const char*, int*>{"tokenizer.ggml.bos_token_id", &v.bos_id},
                          {"tokenizer.ggml.eos_token_id", &v.eos_id},
                          {"tokenizer.ggml.unknown_token_id", &v.unk_id},
                          {"tokenizer.ggml.padding_token_id", &v.pad_id}}) {
    if (auto st = GetTokenId(f, key, n, out); !st.ok()) return st;
  }
  if (f.Has("tokenizer.ggml.add_bos_token")) {
    auto b = f.GetBool("tokenizer.ggml.add_bos_token");
    if (!b.ok()) return b.status();
    v.add_bos = *b;
  }
  if (f.Has("tokenizer.chat_template")) {
    auto t = f.GetString("tokenizer.chat_template");
    if (!t.ok()) return t.status();
    v.chat_template = std::move(*t);
  }
  return v;
}

absl::Status WriteTokenizerFilesFromGguf(const std::string& gguf_path, const std::string& out_dir) {
  auto file = GgufFile::Open(gguf_path);
  if (!file.ok()) return file.status();
  auto vocab = BpeVocabFromGguf(**file);
  if (!vocab.ok()) return vocab.status();
  auto tok = BpeTokenizer::Create(std::move(*vocab), gguf_path);
  if (!tok.ok()) return tok.status();
  return (*tok)->WriteHuggingFaceFiles(out_dir);
}

}  // namespace pmpd::models
