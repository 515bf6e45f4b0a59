#include "inference/llama_layer.h"

#include <cmath>
#include <limits>

namespace pmpd::inference {
namespace {

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
    at::Tensor smooth =
        (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
    at::Tensor smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled;
    at::Tensor medium =
        at::logical_not(wavelen < high_wavelen) & at::logical_not(wavelen > low_wavelen);
    inv_freq = at::where(medium, smoothed, scaled);
  }
  return inv_freq.to(at::kFloat);
}

}  // namespace

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps) {
  at::Tensor var = x.pow(2).mean(-1, /*keepdim=*/true);
  return w * (x * at::rsqrt(var + eps));
}

at::Tensor RotateHalf(const at::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

void RotaryTables(const models::LlamaConfig& c, at::Tensor* cos, at::Tensor* sin) {
  const int64_t T = c.max_position_embeddings;
  at::Tensor inv_freq = InvFrequencies(c);
  at::Tensor pos = at::arange(T, at::kLong).to(at::kFloat);
  at::Tensor freqs = at::outer(pos, inv_freq);
  at::Tensor emb = at::cat({freqs, freqs}, -1);
  *cos = emb.cos();
  *sin = emb.sin();
}

at::Tensor CausalMask(int64_t n, int64_t pos, const at::Device& device) {
  if (n <= 1) return {};
  return at::ones({n, pos + n}, at::TensorOptions().dtype(at::kBool).device(device))
      .tril(pos)
      .logical_not();
}

at::Tensor DecoderLayer(const models::LlamaConfig& c, const at::Tensor& x,
                        const at::Tensor& input_norm, const at::Tensor& post_norm,
                        const at::Tensor& cs, const at::Tensor& sn, const at::Tensor& mask,
                        const ProjectionFn& project, const KvFn& kv) {
  const int64_t n = x.size(0);
  const int64_t nh = c.num_attention_heads, kvh = c.num_key_value_heads, hd = c.head_dim,
                g = nh / kvh;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  at::Tensor h = RmsNorm(x, input_norm, c.rms_norm_eps);
  at::Tensor q = project(0, h).view({n, nh, hd}).transpose(0, 1);   // [nh, n, hd]
  at::Tensor k = project(1, h).view({n, kvh, hd}).transpose(0, 1);  // [kvh, n, hd]
  at::Tensor v = project(2, h).view({n, kvh, hd}).transpose(0, 1);
  q = q * cs + RotateHalf(q) * sn;
  k = k * cs + RotateHalf(k) * sn;
  auto [K, Vc] = kv(k, v);  // [kvh, S, hd]
  const int64_t S = K.size(1);
  at::Tensor qg = q.reshape({kvh, g * n, hd});  // heads h = kv * g + j share kv head `kv`
  at::Tensor scores = at::matmul(qg, K.transpose(1, 2)) * scale;  // [kvh, g*n, S]
  if (mask.defined()) {
    scores = scores.view({kvh, g, n, S})
                 .masked_fill(mask, -std::numeric_limits<float>::infinity())
                 .view({kvh, g * n, S});
  }
  at::Tensor attn = at::matmul(at::softmax(scores, -1), Vc);  // [kvh, g*n, hd]
  attn = attn.view({nh, n, hd}).transpose(0, 1).reshape({n, nh * hd});
  at::Tensor out = x + project(3, attn);
  h = RmsNorm(out, post_norm, c.rms_norm_eps);
  return out + project(6, at::silu(project(4, h)) * project(5, h));
}

}  // namespace pmpd::inference
