// Llama forward on ATen, written to follow Hugging Face transformers' LlamaForCausalLM op for op
// (RMSNorm in float32, rotate-half rotary embedding, GQA attention with softmax in float32, SwiGLU).
#include "inference/llama_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/safetensors.h"

namespace pmpd::inference {
namespace {

struct LayerWeights {
  at::Tensor input_norm, q, k, v, o, post_norm, gate, up, down;
};

// Rotary inverse frequencies as in transformers' rope init functions (default, linear, llama3).
at::Tensor InvFrequencies(const models::LlamaConfig& c) {
  const int64_t d = c.head_dim;
  at::Tensor exponents = at::arange(0, d, 2, at::kLong).to(at::kFloat) / static_cast<float>(d);
  at::Tensor inv_freq = 1.0 / at::pow(static_cast<float>(c.rope_theta), exponents);
  const auto& s = c.rope_scaling;
  if (s.type == models::RopeScalingType::kLinear) {
    inv_freq = inv_freq / static_cast<float>(s.factor);
  } else if (s.type == models::RopeScalingType::kLlama3) {
    const double old_len = s.original_max_position_embeddings;
    const double low_wavelen = old_len / s.low_freq_factor;
    const double high_wavelen = old_len / s.high_freq_factor;
    at::Tensor wavelen = 2 * M_PI / inv_freq;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq);
    at::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor medium = at::logical_not(wavelen < high_wavelen) & at::logical_not(wavelen > low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  return inv_freq.to(at::kFloat);
}

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return w * (x * at::rsqrt(var + eps));
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

}  // namespace

struct LlamaModel::Impl {
  models::LlamaConfig config;
  at::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  at::Tensor cos, sin;                  // [max_context, head_dim]
  std::vector<at::Tensor> k_cache, v_cache;  // per layer [kv_heads, max_context, head_dim]
  int cache_len = 0;
};

LlamaModel::LlamaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaModel::~LlamaModel() = default;

const models::LlamaConfig& LlamaModel::config() const { return impl_->config; }
int LlamaModel::max_context() const { return impl_->config.max_position_embeddings; }
int LlamaModel::cache_len() const { return impl_->cache_len; }
void LlamaModel::Reset() { impl_->cache_len = 0; }

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const std::string& model_dir) {
  auto config = models::LoadLlamaConfig(model_dir);
  if (!config.ok()) return config.status();
  auto ck = models::SafetensorsCheckpoint::Open(model_dir);
  if (!ck.ok()) return ck.status();
  c10::InferenceMode guard;
  auto impl = std::make_unique<Impl>();
  impl->config = *config;
  const models::LlamaConfig& c = impl->config;

  absl::Status status;
  auto load = [&](const std::string& name, std::vector<int64_t> shape) -> at::Tensor {
    if (!status.ok()) return {};
    auto t = (*ck)->Find(name);
    if (!t.ok()) {
      status = t.status();
      return {};
    }
    const models::TensorView& v = **t;
    if (v.shape != shape) {
      status = absl::InvalidArgumentError(absl::StrCat(v.file, ": tensor \"", name, "\" has shape ", v.ShapeString(),
                                                       "; config.json implies [", absl::StrJoin(shape, ", "), "]"));
      return {};
    }
    at::Tensor out = at::empty(shape, at::kFloat);
    status = models::ToFloat32(v, out.data_ptr<float>());
    return out;
  };
  const int64_t H = c.hidden_size, I = c.intermediate_size, V = c.vocab_size;
  impl->embed = load("model.embed_tokens.weight", {V, H});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LayerWeights w;
    w.input_norm = load(p + "input_layernorm.weight", {H});
    w.q = load(p + "self_attn.q_proj.weight", {c.q_dim(), H});
    w.k = load(p + "self_attn.k_proj.weight", {c.kv_dim(), H});
    w.v = load(p + "self_attn.v_proj.weight", {c.kv_dim(), H});
    w.o = load(p + "self_attn.o_proj.weight", {H, c.q_dim()});
    w.post_norm = load(p + "post_attention_layernorm.weight", {H});
    w.gate = load(p + "mlp.gate_proj.weight", {I, H});
    w.up = load(p + "mlp.up_proj.weight", {I, H});
    w.down = load(p + "mlp.down_proj.weight", {H, I});
    impl->layers.push_back(std::move(w));
  }
  impl->final_norm = load("model.norm.weight", {H});
  if (c.tie_word_embeddings) {
    impl->lm_head = impl->embed;
  } else {
    impl->lm_head = load("lm_head.weight", {V, H});
  }
  if (!status.ok()) return status;

  const int64_t T = c.max_position_embeddings;
  at::Tensor inv_freq = InvFrequencies(c);
  at::Tensor pos = at::arange(T, at::kLong).to(at::kFloat);
  at::Tensor freqs = at::outer(pos, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  impl->cos = emb.cos();
  impl->sin = emb.sin();
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    impl->k_cache.push_back(at::zeros({c.num_key_value_heads, T, c.head_dim}, at::kFloat));
    impl->v_cache.push_back(at::zeros({c.num_key_value_heads, T, c.head_dim}, at::kFloat));
  }
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(impl)));
}

absl::Status LlamaModel::Forward(absl::Span<const int> tokens, bool all_positions, std::vector<float>* logits) {
  Impl& m = *impl_;
  const models::LlamaConfig& c = m.config;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("Forward: no tokens");
  if (m.cache_len + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(absl::StrCat("sequence of ", m.cache_len + n, " tokens exceeds the model's context of ",
                                              c.max_position_embeddings, " (max_position_embeddings)"));
  }
  for (int id : tokens) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  c10::InferenceMode guard;
  const int64_t pos = m.cache_len, S = pos + n;
  const int64_t nh = c.num_attention_heads, kvh = c.num_key_value_heads, hd = c.head_dim, g = nh / kvh;
  at::Tensor ids = at::from_blob(const_cast<int*>(tokens.data()), {n}, at::kInt).to(at::kLong);
  at::Tensor x = m.embed.index_select(0, ids);  // [n, H]
  at::Tensor cos = m.cos.narrow(0, pos, n), sin = m.sin.narrow(0, pos, n);  // [n, hd]
  at::Tensor mask;
  if (n > 1) {  // query i (absolute pos+i) sees keys j <= pos+i
    mask = at::ones({n, S}, at::kBool).tril(pos).logical_not();
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (size_t l = 0; l < m.layers.size(); ++l) {
    const LayerWeights& w = m.layers[l];
    at::Tensor h = RmsNorm(x, w.input_norm, c.rms_norm_eps);
    at::Tensor q = at::linear(h, w.q).view({n, nh, hd}).transpose(0, 1);   // [nh, n, hd]
    at::Tensor k = at::linear(h, w.k).view({n, kvh, hd}).transpose(0, 1);  // [kvh, n, hd]
    at::Tensor v = at::linear(h, w.v).view({n, kvh, hd}).transpose(0, 1);
    q = q * cos + RotateHalf(q) * sin;
    k = k * cos + RotateHalf(k) * sin;
    m.k_cache[l].narrow(1, pos, n).copy_(k);
    m.v_cache[l].narrow(1, pos, n).copy_(v);
    at::Tensor K = m.k_cache[l].narrow(1, 0, S), Vc = m.v_cache[l].narrow(1, 0, S);  // [kvh, S, hd]
    at::Tensor qg = q.reshape({kvh, g * n, hd});  // heads h = kv * g + j share kv head `kv`
    at::Tensor scores = at::matmul(qg, K.transpose(1, 2)) * scale;  // [kvh, g*n, S]
    if (mask.defined()) {
      scores = scores.view({kvh, g, n, S}).masked_fill(mask, -std::numeric_limits<float>::infinity())
                   .view({kvh, g * n, S});
    }
    at::Tensor attn = at::matmul(at::softmax(scores, -1), Vc);  // [kvh, g*n, hd]
    attn = attn.view({nh, n, hd}).transpose(0, 1).reshape({n, nh * hd});
    x = x + at::linear(attn, w.o);
    h = RmsNorm(x, w.post_norm, c.rms_norm_eps);
    x = x + at::linear(at::silu(at::linear(h, w.gate)) * at::linear(h, w.up), w.down);
  }
  m.cache_len = static_cast<int>(S);
  if (!all_positions) x = x.narrow(0, n - 1, 1);
  at::Tensor out = at::linear(RmsNorm(x, m.final_norm, c.rms_norm_eps), m.lm_head).contiguous();
  logits->assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  return absl::OkStatus();
}

}  // namespace pmpd::inference
