#include "models/random_llama.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "models/file_util.h"
#include "models/safetensors.h"
#include "models/sentencepiece_backend.h"
#include "models/splitmix64.h"

namespace pmpd::models {
namespace {

TensorToWrite RandomTensor(const std::string& name, std::vector<int64_t> shape, uint64_t* state,
                           double scale, double offset) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<float>(offset + RandomWeight(state, scale));
  TensorToWrite t{name, DType::kF32, std::move(shape), std::string(n * sizeof(float), '\0')};
  std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

constexpr const char* kTinyCorpus[] = {
    "Once upon a time there was a little girl named Lily. She liked to play in the park with her "
    "dog.",
    "The sun was warm and the sky was blue. Tom and his mom went to the store to buy apples and "
    "bread.",
    "One day, a small bird found a shiny stone near the river. It was happy and sang a song.",
    "Quantized language models decode faster because every token reads fewer bytes of weights.",
    "Progressive mixed-precision decoding starts at high precision and lowers it as the text "
    "grows.",
    "The cat sat on the mat. The dog ran to the door. 0123456789 numbers, commas; and: "
    "punctuation!",
};

}  // namespace

float RandomWeight(uint64_t* state, double scale) {
  const double u = static_cast<double>(SplitMix64Next(state) >> 40) / 16777216.0;
  return static_cast<float>((2.0 * u - 1.0) * scale);
}

// Tensor order (one splitmix64 stream seeded with `seed`, consumed in this order, row-major):
//   embed_tokens [V,H] scale 1; per layer: input_layernorm [H] 1 + U(0.1);
//   q,k,v,o,gate,up,down projections [out,in] scale sqrt(3/in); post_attention_layernorm [H] 1 +
//   U(0.1) (written after o_proj); final norm [H] 1 + U(0.1); lm_head [V,H] scale sqrt(3/H) when
//   untied.
absl::Status WriteRandomLlama(const std::string& dir, const LlamaConfig& c, uint64_t seed) {
  if (auto st = MakeDirs(dir); !st.ok()) return st;
  uint64_t s = seed;
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  auto lin = [&](const std::string& name, int64_t out, int64_t in) {
    return RandomTensor(name, {out, in}, &s, std::sqrt(3.0 / in), 0.0);
  };
  std::vector<TensorToWrite> ts;
  ts.push_back(RandomTensor("model.embed_tokens.weight", {V, H}, &s, 1.0, 0.0));
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    ts.push_back(RandomTensor(p + "input_layernorm.weight", {H}, &s, 0.1, 1.0));
    ts.push_back(lin(p + "self_attn.q_proj.weight", c.q_dim(), H));
    ts.push_back(lin(p + "self_attn.k_proj.weight", c.kv_dim(), H));
    ts.push_back(lin(p + "self_attn.v_proj.weight", c.kv_dim(), H));
    ts.push_back(lin(p + "self_attn.o_proj.weight", H, c.q_dim()));
    ts.push_back(RandomTensor(p + "post_attention_layernorm.weight", {H}, &s, 0.1, 1.0));
    ts.push_back(lin(p + "mlp.gate_proj.weight", I, H));
    ts.push_back(lin(p + "mlp.up_proj.weight", I, H));
    ts.push_back(lin(p + "mlp.down_proj.weight", H, I));
  }
  ts.push_back(RandomTensor("model.norm.weight", {H}, &s, 0.1, 1.0));
  if (!c.tie_word_embeddings) ts.push_back(lin("lm_head.weight", V, H));
  if (auto st = base::WriteFileAtomically(JoinPath(dir, "config.json"), LlamaConfigToJson(c));
      !st.ok())
    return st;
  return WriteSafetensors(JoinPath(dir, "model.safetensors"), ts, {{"format", "pt"}});
}

absl::Status WriteTinyTokenizer(const std::string& dir, int* vocab_size) {
  if (auto st = MakeDirs(dir); !st.ok()) return st;
  const std::string corpus_path = JoinPath(dir, "tokenizer_corpus.txt");
  std::string corpus;
  for (const char* line : kTinyCorpus) absl::StrAppend(&corpus, line, "\n");
  if (auto st = base::WriteFileAtomically(corpus_path, corpus); !st.ok()) return st;
  const std::string prefix = JoinPath(dir, "tokenizer");
  std::string error;
  const bool trained = SentencePieceBackend::Train(
      absl::StrCat(
          "--input=", corpus_path, " --model_prefix=", prefix,
          " --model_type=bpe --vocab_size=400 --hard_vocab_limit=false --byte_fallback=true",
          " --character_coverage=1.0 --bos_id=1 --eos_id=2 --unk_id=0 --minloglevel=2"),
      &error);
  std::remove(corpus_path.c_str());
  std::remove((prefix + ".vocab").c_str());
  if (!trained)
    return absl::InternalError(absl::StrCat(dir, ": training the demo tokenizer failed: ", error));
  SentencePieceBackend sp;  // the vocabulary size is whatever the trainer reached
  if (!sp.Load(prefix + ".model", &error))
    return absl::InternalError(absl::StrCat(prefix, ".model: ", error));
  *vocab_size = sp.vocab_size();
  return absl::OkStatus();
}

LlamaConfig TinyDemoConfig(int vocab_size) {
  LlamaConfig c;
  c.architecture = "LlamaForCausalLM";
  c.model_type = "llama";
  c.hidden_size = 64;
  c.intermediate_size = 176;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.vocab_size = vocab_size;
  c.max_position_embeddings = 512;
  c.rms_norm_eps = 1e-5;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  return c;
}

}  // namespace pmpd::models
