// A tiny GGUF writer for tests: valid files with chosen metadata and tensors, and the knobs to
// break them (counts, version, offsets, raw value bytes); and TinyLlama, a small valid Llama GGUF
// with the Hugging Face tensors it must read as. Independent of models/gguf.cc: it follows the
// layout in models/gguf.h byte by byte.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/half.h"

namespace pmpd::testing {

class GgufWriter {
 public:
  // Value types and ggml types, numbered as in the file.
  enum : uint32_t {
    kU8 = 0,
    kI8,
    kU16,
    kI16,
    kU32,
    kI32,
    kF32,
    kBool,
    kString,
    kArray,
    kU64,
    kI64,
    kF64
  };
  enum : uint32_t {
    kTF32 = 0,
    kTF16 = 1,
    kTQ4_0 = 2,
    kTQ4_1 = 3,
    kTQ8_0 = 8,
    kTQ5_K = 13,
    kTBF16 = 30
  };

  // Little-endian encodings.
  template <typename T>
  static std::string Le(T v) {
    std::string s(sizeof(T), '\0');
    std::memcpy(&s[0], &v, sizeof(T));
    return s;
  }
  static std::string Str(const std::string& s) { return Le<uint64_t>(s.size()) + s; }

  // Metadata, in insertion order. `value` is the encoded value (after the type).
  void Raw(const std::string& key, uint32_t type, const std::string& value) {
    kv_ += Str(key) + Le<uint32_t>(type) + value;
    ++kv_count_;
  }
  void String(const std::string& key, const std::string& v) { Raw(key, kString, Str(v)); }
  void U32(const std::string& key, uint32_t v) { Raw(key, kU32, Le(v)); }
  void I32(const std::string& key, int32_t v) { Raw(key, kI32, Le(v)); }
  void U64(const std::string& key, uint64_t v) { Raw(key, kU64, Le(v)); }
  void F32(const std::string& key, float v) { Raw(key, kF32, Le(v)); }
  void Bool(const std::string& key, bool v) { Raw(key, kBool, std::string(1, v ? '\1' : '\0')); }
  void StringArray(const std::string& key, const std::vector<std::string>& v) {
    std::string b = Le<uint32_t>(kString) + Le<uint64_t>(v.size());
    for (const auto& s : v) b += Str(s);
    Raw(key, kArray, b);
  }
  void I32Array(const std::string& key, const std::vector<int32_t>& v) {
    std::string b = Le<uint32_t>(kI32) + Le<uint64_t>(v.size());
    for (int32_t x : v) b += Le(x);
    Raw(key, kArray, b);
  }

  // A tensor: ne in ggml order (ne[0] contiguous), raw data bytes. Offsets are assigned in order,
  // each aligned, unless `offset` is given.
  void Tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
              const std::string& data, int64_t offset = -1) {
    tensors_.push_back({name, ne, type, data, offset});
  }

  struct Built {
    std::string bytes;
    size_t metadata_begin = 0;  // first byte of the first key/value pair
    size_t infos_begin = 0;     // first byte of the first tensor info
    size_t data_begin = 0;      // first byte of the tensor data section
  };

  // Knobs for broken files.
  uint32_t version = 3;
  uint64_t alignment = 32;  // padding used (write general.alignment yourself to change it)
  int64_t tensor_count_override = -1;
  int64_t kv_count_override = -1;

  Built Build() const {
    Built b;
    std::string& s = b.bytes;
    s = "GGUF" + Le<uint32_t>(version);
    s += Le<uint64_t>(tensor_count_override >= 0 ? static_cast<uint64_t>(tensor_count_override)
                                                 : tensors_.size());
    s +=
        Le<uint64_t>(kv_count_override >= 0 ? static_cast<uint64_t>(kv_count_override) : kv_count_);
    b.metadata_begin = s.size();
    s += kv_;
    b.infos_begin = s.size();
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const auto& t : tensors_) {
      const uint64_t off = t.offset >= 0 ? static_cast<uint64_t>(t.offset) : next;
      offsets.push_back(off);
      next = Align(std::max<uint64_t>(next, off + t.data.size()));
      s += Str(t.name) + Le<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) s += Le(d);
      s += Le(t.type) + Le(off);
    }
    s.resize(Align(s.size()), '\0');
    b.data_begin = s.size();
    for (size_t k = 0; k < tensors_.size(); ++k) {
      if (tensors_[k].data.empty()) continue;  // (an offset far out of range writes nothing)
      const size_t at = b.data_begin + offsets[k];
      if (s.size() < at + tensors_[k].data.size()) s.resize(at + tensors_[k].data.size(), '\0');
      std::memcpy(&s[at], tensors_[k].data.data(), tensors_[k].data.size());
    }
    return b;
  }

  // Encoders of tensor data.
  static std::string F32Data(const std::vector<float>& v) {
    std::string s;
    for (float x : v) s += Le(x);
    return s;
  }
  static std::string F16Data(const std::vector<float>& v) {
    std::string s;
    for (float x : v) s += Le(kernels::F32ToF16(x));
    return s;
  }
  static std::string Bf16Data(const std::vector<float>& v) {
    std::string s;
    for (float x : v) s += Le(kernels::F32ToBf16(x));
    return s;
  }
  // One block of 32 from its scale(s) and integer codes: Q8_0 codes in [-128, 127], Q4_0 / Q4_1 in
  // [0, 15] (element j < 16 in the low nibble of byte j, element j + 16 in its high nibble).
  static std::string Q8_0Block(float d, const std::vector<int>& q) {
    std::string s = Le(kernels::F32ToF16(d));
    for (int x : q) s += static_cast<char>(static_cast<int8_t>(x));
    return s;
  }
  static std::string Q4Block(float d, const float* m, const std::vector<int>& q) {
    std::string s = Le(kernels::F32ToF16(d));
    if (m != nullptr) s += Le(kernels::F32ToF16(*m));
    for (int j = 0; j < 16; ++j) s += static_cast<char>(q[j] | q[j + 16] << 4);
    return s;
  }

 private:
  struct T {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    int64_t offset;
  };
  uint64_t Align(uint64_t x) const {
    return alignment == 0 ? x : (x + alignment - 1) / alignment * alignment;
  }

  std::string kv_;
  uint64_t kv_count_ = 0;
  std::vector<T> tensors_;
};

// A tiny Llama GGUF: 2 layers, hidden 64, 4 heads / 2 KV heads of 16, FFN 128, 32 tokens, with
// tensors of every type we dequantize, and the Hugging Face tensors it must read as.
constexpr int kLayers = 2, kHidden = 64, kHeads = 4, kKvHeads = 2, kHeadDim = 16, kFfn = 128,
              kVocab = 32;

struct Expected {
  std::vector<int64_t> shape;
  std::vector<float> values;  // row-major in the Hugging Face shape
};

struct TinyOptions {
  std::string architecture = "llama";
  std::string tokenizer_model = "gpt2";
  bool tokens = true, merges = true;
  bool untied = true;  // write output.weight
};

inline std::vector<std::string> TinyTokens() {
  std::vector<std::string> t = {"<unk>", "<|im_start|>", "<|im_end|>", "a",  "b", "ab",
                                "Ġ",     "Ġab",          "c",          "abc"};
  while (t.size() < kVocab - 1) t.push_back(absl::StrCat("t", t.size()));
  t.push_back("<|user|>");
  return t;
}

class TinyLlama {
 public:
  explicit TinyLlama(const TinyOptions& o = TinyOptions()) : rng_(7) {
    w.String("general.architecture", o.architecture);
    w.String("general.name", "tiny");
    w.U32("llama.block_count", kLayers);
    w.U32("llama.context_length", 256);
    w.U32("llama.embedding_length", kHidden);
    w.U32("llama.feed_forward_length", kFfn);
    w.U32("llama.attention.head_count", kHeads);
    w.U32("llama.attention.head_count_kv", kKvHeads);
    w.F32("llama.rope.freq_base", 500000.0f);
    w.F32("llama.attention.layer_norm_rms_epsilon", 1e-6f);
    w.U32("llama.rope.dimension_count", kHeadDim);
    w.U32("llama.vocab_size", kVocab);
    w.String("tokenizer.ggml.model", o.tokenizer_model);
    w.String("tokenizer.ggml.pre", "smollm");
    if (o.tokens) w.StringArray("tokenizer.ggml.tokens", TinyTokens());
    if (o.merges) w.StringArray("tokenizer.ggml.merges", {"a b", "ab c", "Ġ ab"});
    std::vector<int32_t> types(kVocab, 1);
    types[0] = 2;
    types[1] = types[2] = 3;
    types[kVocab - 1] = 4;
    w.I32Array("tokenizer.ggml.token_type", types);
    w.U32("tokenizer.ggml.bos_token_id", 1);
    w.U32("tokenizer.ggml.eos_token_id", 2);
    w.U32("tokenizer.ggml.unknown_token_id", 0);
    w.U32("tokenizer.ggml.padding_token_id", 2);
    w.Bool("tokenizer.ggml.add_bos_token", true);
    w.String("tokenizer.chat_template", "{{ messages }}");

    Add("token_embd.weight", "model.embed_tokens.weight", kVocab, kHidden, GgufWriter::kTQ8_0);
    Add("output_norm.weight", "model.norm.weight", 1, kHidden, GgufWriter::kTF32);
    if (o.untied) Add("output.weight", "lm_head.weight", kVocab, kHidden, GgufWriter::kTF16);
    for (int l = 0; l < kLayers; ++l) {
      const std::string g = absl::StrCat("blk.", l, "."), h = absl::StrCat("model.layers.", l, ".");
      Add(g + "attn_norm.weight", h + "input_layernorm.weight", 1, kHidden, GgufWriter::kTF32);
      Add(g + "ffn_norm.weight", h + "post_attention_layernorm.weight", 1, kHidden,
          GgufWriter::kTBF16);
      Add(g + "attn_q.weight", h + "self_attn.q_proj.weight", kHeads * kHeadDim, kHidden,
          l == 0 ? GgufWriter::kTQ4_0 : GgufWriter::kTQ4_1, kHeads);
      Add(g + "attn_k.weight", h + "self_attn.k_proj.weight", kKvHeads * kHeadDim, kHidden,
          l == 0 ? GgufWriter::kTQ4_1 : GgufWriter::kTF16, kKvHeads);
      Add(g + "attn_v.weight", h + "self_attn.v_proj.weight", kKvHeads * kHeadDim, kHidden,
          GgufWriter::kTBF16);
      Add(g + "attn_output.weight", h + "self_attn.o_proj.weight", kHidden, kHeads * kHeadDim,
          GgufWriter::kTF16);
      Add(g + "ffn_gate.weight", h + "mlp.gate_proj.weight", kFfn, kHidden, GgufWriter::kTQ4_1);
      Add(g + "ffn_up.weight", h + "mlp.up_proj.weight", kFfn, kHidden, GgufWriter::kTQ8_0);
      Add(g + "ffn_down.weight", h + "mlp.down_proj.weight", kHidden, kFfn, GgufWriter::kTQ4_0);
    }
    w.Tensor("rope_unused.weight", {4}, GgufWriter::kTF32,
             GgufWriter::F32Data({1, 2, 3, 4}));  // ignored by the model
  }

  GgufWriter w;
  std::map<std::string, Expected> expected;

 private:
  // A scale exactly representable in binary16: k / 4096 with k < 2048.
  float Scale() {
    return static_cast<float>(std::uniform_int_distribution<int>(1, 2047)(rng_)) / 4096.0f;
  }
  int Int(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  // A tensor of `rows` x `cols` (ne = {cols, rows}; 1-D when rows == 1) of `type`, with values
  // drawn so that each type holds them exactly; `heads` > 0 stores the rows permuted as llama.cpp's
  // converter does for q_proj / k_proj.
  void Add(const std::string& gguf, const std::string& hf, int rows, int cols, uint32_t type,
           int heads = 0) {
    std::vector<float> stored(static_cast<size_t>(rows) * cols);  // dequantized, in file order
    std::string data;
    if (type == GgufWriter::kTF32) {
      for (float& x : stored) x = std::uniform_real_distribution<float>(-1, 1)(rng_);
      data = GgufWriter::F32Data(stored);
    } else if (type == GgufWriter::kTF16) {
      for (float& x : stored) x = static_cast<float>(Int(-2047, 2047)) / 1024.0f;  // 11 bits: exact
      data = GgufWriter::F16Data(stored);
    } else if (type == GgufWriter::kTBF16) {
      for (float& x : stored) x = static_cast<float>(Int(-255, 255)) / 128.0f;  // 8 bits: exact
      data = GgufWriter::Bf16Data(stored);
    } else {
      for (size_t b = 0; b < stored.size() / 32; ++b) {
        const float d = Scale(), m = -Scale();
        std::vector<int> q(32);
        for (int j = 0; j < 32; ++j) {
          q[j] = type == GgufWriter::kTQ8_0 ? Int(-128, 127) : Int(0, 15);
          // In double, exactly, then rounded once to float (what float32 d * q + m gives).
          const double v = type == GgufWriter::kTQ8_0   ? double{d} * q[j]
                           : type == GgufWriter::kTQ4_0 ? double{d} * (q[j] - 8)
                                                        : double{d} * q[j] + double{m};
          stored[b * 32 + j] = static_cast<float>(v);
        }
        data += type == GgufWriter::kTQ8_0   ? GgufWriter::Q8_0Block(d, q)
                : type == GgufWriter::kTQ4_0 ? GgufWriter::Q4Block(d, nullptr, q)
                                             : GgufWriter::Q4Block(d, &m, q);
      }
    }
    std::vector<uint64_t> ne = {static_cast<uint64_t>(cols)};
    if (rows > 1) ne.push_back(static_cast<uint64_t>(rows));
    w.Tensor(gguf, ne, type, data);
    Expected e;
    e.shape = rows > 1 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{cols};
    e.values = stored;
    if (heads > 0) {
      // The converter: stored = hf.reshape(heads, 2, R/2, cols).swapaxes(1, 2), i.e.
      // stored[h][r][t] = hf[h][t][r]; so hf row (h, t, r) is stored row (h, r, t).
      const int per_head = rows / heads, half = per_head / 2;
      for (int h = 0; h < heads; ++h) {
        for (int r = 0; r < half; ++r) {
          for (int t = 0; t < 2; ++t) {
            const int stored_row = h * per_head + r * 2 + t, hf_row = h * per_head + t * half + r;
            std::copy_n(&stored[static_cast<size_t>(stored_row) * cols], cols,
                        &e.values[static_cast<size_t>(hf_row) * cols]);
          }
        }
      }
    }
    expected[hf] = std::move(e);
  }

  std::mt19937 rng_;
};

}  // namespace pmpd::testing
