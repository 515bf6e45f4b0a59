// Llama forward on ATen, written to follow Hugging Face transformers' LlamaForCausalLM op for op
// (RMSNorm in float32, rotate-half rotary embedding, GQA attention with softmax in float32,
// SwiGLU).
#include "inference/llama_model.h"

#include <ATen/ATen.h>
#include <ATen/TensorIndexing.h>
#include <c10/core/GradMode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "inference/llama_layer.h"
#include "inference/sampler.h"
#include "kernels/check.h"
#include "kernels/ref/anyprec_ref.h"
#include "models/anyprec_checkpoint.h"
#include "models/safetensors.h"

namespace pmpd::inference {
namespace {

// A projection: dense float32 weights, or any-precision bitplanes read at the model's precision.
struct Linear {
  at::Tensor dense;  // [N, K]
  std::unique_ptr<models::AnyprecMatrix> quant;
  std::vector<at::Tensor>
      dequantized;  // optional: [bits] -> W_bits as float32, see CacheDequantizedWeights
};

struct LayerWeights {
  at::Tensor input_norm, post_norm;
  Linear q, k, v, o, gate, up, down;
  // In the order of models::LlamaProjections.
  std::array<Linear*, 7> Projections() { return {&q, &k, &v, &o, &gate, &up, &down}; }
  std::array<const Linear*, 7> Projections() const { return {&q, &k, &v, &o, &gate, &up, &down}; }
};

// y = x W^T. Any-precision: up to 8 rows read the planes directly (the GEMV path); more rows
// dequantize W once (O(N K)) and use a dense product, as the GPU prefill path does.
at::Tensor Apply(const Linear& lin, const at::Tensor& x, int bits) {
  if (lin.dense.defined()) return at::linear(x, lin.dense);
  if (static_cast<size_t>(bits) < lin.dequantized.size() && lin.dequantized[bits].defined()) {
    return at::linear(x, lin.dequantized[bits]);
  }
  const models::AnyprecMatrix& m = *lin.quant;
  at::Tensor xc = x.contiguous();
  const int rows = static_cast<int>(xc.size(0));
  if (rows <= 8) {
    at::Tensor y = at::empty({rows, m.n}, at::kFloat);
    kernels::AnyprecGemmRef(xc.data_ptr<float>(), rows, m.qweight.data(), m.lut(bits), m.n, m.k,
                            m.parent_bits, bits, y.data_ptr<float>());
    return y;
  }
  at::Tensor w = at::empty({m.n, m.k}, at::kFloat);
  kernels::AnyprecDequantRef(m.qweight.data(), m.lut(bits), m.n, m.k, m.parent_bits, bits,
                             w.data_ptr<float>());
  return at::linear(xc, w);
}

// Grows `cache` along `dim` to hold at least `needed` positions (capacity doubles, capped at
// `max_len`), keeping its contents. Amortised O(1) per position; the CPU reference allocates here,
// so a long-context model does not pay for its whole context up front.
void EnsureCapacity(at::Tensor& cache, int64_t dim, int64_t needed, int64_t max_len) {
  const int64_t cap = cache.size(dim);
  if (needed <= cap) return;
  std::vector<int64_t> shape = cache.sizes().vec();
  shape[dim] = std::min(max_len, std::max(needed, 2 * cap));
  at::Tensor grown = at::zeros(shape, cache.options());
  grown.narrow(dim, 0, cap).copy_(cache);
  cache = grown;
}

constexpr int64_t kInitialCacheLen = 256;

}  // namespace

struct LlamaModel::Impl {
  models::LlamaConfig config;
  at::Tensor embed, final_norm, lm_head;
  std::vector<LayerWeights> layers;
  at::Tensor cos, sin;  // [max_context, head_dim]
  std::vector<at::Tensor> k_cache,
      v_cache;  // per layer [kv_heads, capacity, head_dim], grown on demand
  int cache_len = 0;
  // Sequence slots: the selected one lives in k_cache / v_cache / cache_len above, the others are
  // parked here (slots[selected] is empty while selected); selecting swaps tensor handles,
  // O(layers).
  struct Slot {
    std::vector<at::Tensor> k, v;
    int len = 0;
  };
  std::vector<Slot> slots = std::vector<Slot>(1);
  int selected = 0;
  std::optional<models::AnyprecInfo> anyprec;
  int precision = 0;
  // Branches (see StartBranches): per layer [B, kv_heads, capacity, head_dim], and lengths.
  std::vector<at::Tensor> bk_cache, bv_cache;
  std::vector<int> branch_len;

  at::Tensor Hidden(const at::Tensor& ids, int64_t pos, bool use_cache);
  at::Tensor BranchHidden(const at::Tensor& ids);
};

LlamaModel::LlamaModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LlamaModel::~LlamaModel() = default;

const models::LlamaConfig& LlamaModel::config() const { return impl_->config; }
int LlamaModel::max_context() const { return impl_->config.max_position_embeddings; }
int LlamaModel::cache_len() const { return impl_->cache_len; }
void LlamaModel::Reset() { impl_->cache_len = 0; }
int LlamaModel::precision() const { return impl_->precision; }
int LlamaModel::min_precision() const { return impl_->anyprec ? impl_->anyprec->seed_bits : 0; }
int LlamaModel::max_precision() const { return impl_->anyprec ? impl_->anyprec->parent_bits : 0; }

namespace {

// A new sequence's K or V cache: per layer [kv_heads, initial capacity, head_dim], zeros (grown
// on demand by EnsureCapacity).
std::vector<at::Tensor> EmptyCache(const models::LlamaConfig& c) {
  const int64_t cap = std::min<int64_t>(c.max_position_embeddings, kInitialCacheLen);
  std::vector<at::Tensor> cache;
  for (int l = 0; l < c.num_hidden_layers; ++l)
    cache.push_back(at::zeros({c.num_key_value_heads, cap, c.head_dim}, at::kFloat));
  return cache;
}

}  // namespace

absl::Status LlamaModel::SetMaxBatch(int n) {
  if (n < 1) return absl::InvalidArgumentError(absl::StrCat("max batch ", n, " < 1"));
  Impl& m = *impl_;
  if (m.selected >= n) PMPD_CHECK(SelectSequence(0).ok(), "slot 0 always exists");
  const size_t old = m.slots.size();
  m.slots.resize(n);
  for (size_t s = old; s < m.slots.size(); ++s) {
    m.slots[s].k = EmptyCache(m.config);
    m.slots[s].v = EmptyCache(m.config);
  }
  return absl::OkStatus();
}

int LlamaModel::max_batch() const { return static_cast<int>(impl_->slots.size()); }
int LlamaModel::sequence() const { return impl_->selected; }

absl::Status LlamaModel::SelectSequence(int slot) {
  if (auto st = Engine::SelectSequence(slot); !st.ok()) return st;
  Impl& m = *impl_;
  if (slot == m.selected) return absl::OkStatus();
  Impl::Slot& parked = m.slots[m.selected];
  std::swap(parked.k, m.k_cache);
  std::swap(parked.v, m.v_cache);
  std::swap(parked.len, m.cache_len);
  Impl::Slot& next = m.slots[slot];
  std::swap(next.k, m.k_cache);
  std::swap(next.v, m.v_cache);
  std::swap(next.len, m.cache_len);
  m.selected = slot;
  return absl::OkStatus();
}

absl::Status LlamaModel::CopySequence(int from, int to, int length) {
  Impl& m = *impl_;
  const auto valid = [&](int s) { return s >= 0 && s < max_batch(); };
  const int from_len = !valid(from) ? 0 : from == m.selected ? m.cache_len : m.slots[from].len;
  if (auto st = CheckCopySequence(*this, from, to, length, from_len); !st.ok()) return st;
  const std::vector<at::Tensor>& src_k = from == m.selected ? m.k_cache : m.slots[from].k;
  const std::vector<at::Tensor>& src_v = from == m.selected ? m.v_cache : m.slots[from].v;
  std::vector<at::Tensor>& dst_k = to == m.selected ? m.k_cache : m.slots[to].k;
  std::vector<at::Tensor>& dst_v = to == m.selected ? m.v_cache : m.slots[to].v;
  c10::InferenceMode guard;  // as Forward, which made (or grew) these caches
  for (size_t l = 0; l < src_k.size(); ++l) {
    EnsureCapacity(dst_k[l], 1, length, m.config.max_position_embeddings);
    EnsureCapacity(dst_v[l], 1, length, m.config.max_position_embeddings);
    dst_k[l].narrow(1, 0, length).copy_(src_k[l].narrow(1, 0, length));
    dst_v[l].narrow(1, 0, length).copy_(src_v[l].narrow(1, 0, length));
  }
  (to == m.selected ? m.cache_len : m.slots[to].len) = length;
  return absl::OkStatus();
}

int64_t LlamaModel::CacheDequantizedWeights() {
  Impl& m = *impl_;
  if (!m.anyprec) return 0;
  c10::NoGradGuard no_grad;
  int64_t bytes = 0;
  for (LayerWeights& w : m.layers) {
    for (Linear* lin : w.Projections()) {
      if (!lin->quant) continue;
      const models::AnyprecMatrix& q = *lin->quant;
      lin->dequantized.assign(q.parent_bits + 1, at::Tensor());
      for (int b = q.seed_bits; b <= q.parent_bits; ++b) {
        at::Tensor t = at::empty({q.n, q.k}, at::kFloat);
        kernels::AnyprecDequantRef(q.qweight.data(), q.lut(b), q.n, q.k, q.parent_bits, b,
                                   t.data_ptr<float>());
        lin->dequantized[b] = t;
        bytes += t.numel() * 4;
      }
    }
  }
  return bytes;
}

absl::Status LlamaModel::SetPrecision(int bits) {
  if (!impl_->anyprec) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot run at ", bits, " bits: the model is not an any-precision checkpoint"));
  }
  if (!impl_->anyprec->Supports(bits)) {
    return absl::InvalidArgumentError(
        absl::StrCat("precision ", bits, " is not in the checkpoint, which holds ",
                     impl_->anyprec->seed_bits, " to ", impl_->anyprec->parent_bits, " bits"));
  }
  impl_->precision = bits;
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LlamaModel>> LlamaModel::Load(const std::string& model_dir) {
  auto config = models::LoadLlamaConfig(model_dir);
  if (!config.ok()) return config.status();
  auto anyprec = models::LoadAnyprecInfo(model_dir);
  if (!anyprec.ok()) return anyprec.status();
  auto ck = models::OpenWeights(model_dir, *config);
  if (!ck.ok()) return ck.status();
  c10::NoGradGuard no_grad;  // not InferenceMode: sensitivities differentiate through these weights
  auto impl = std::make_unique<Impl>();
  impl->config = *config;
  impl->anyprec = *anyprec;
  if (impl->anyprec) impl->precision = impl->anyprec->parent_bits;
  const models::LlamaConfig& c = impl->config;

  absl::Status status;
  auto load = [&](const std::string& name, std::vector<int64_t> shape) -> at::Tensor {
    if (!status.ok()) return {};
    auto t = models::FindWithShape(**ck, name, shape);
    if (!t.ok()) {
      status = t.status();
      return {};
    }
    const models::TensorView& v = **t;
    at::Tensor out = at::empty(shape, at::kFloat);
    status = models::ToFloat32(v, out.data_ptr<float>());
    return out;
  };
  // A projection `module` of layer `l`: quantized when the any-precision block lists it.
  auto load_linear = [&](int l, const std::string& module, int64_t n, int64_t k) -> Linear {
    Linear lin;
    const auto& ap = impl->anyprec;
    if (ap && std::find(ap->module_names.begin(), ap->module_names.end(), module) !=
                  ap->module_names.end()) {
      if (!status.ok()) return lin;
      const std::string prefix =
          absl::StrCat(ap->model_name, ".", ap->layers_name, ".", l, ".", module);
      auto m =
          models::LoadAnyprecMatrix(**ck, prefix, *ap, static_cast<int>(n), static_cast<int>(k));
      if (!m.ok()) {
        status = m.status();
        return lin;
      }
      lin.quant = std::make_unique<models::AnyprecMatrix>(std::move(*m));
    } else {
      lin.dense = load(absl::StrCat("model.layers.", l, ".", module, ".weight"), {n, k});
    }
    return lin;
  };
  const int64_t H = c.hidden_size, V = c.vocab_size;
  impl->embed = load("model.embed_tokens.weight", {V, H});
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LayerWeights w;
    w.input_norm = load(p + "input_layernorm.weight", {H});
    w.post_norm = load(p + "post_attention_layernorm.weight", {H});
    const auto shapes = models::LlamaProjections(c);
    const auto lins = w.Projections();
    for (size_t i = 0; i < shapes.size(); ++i) {
      *lins[i] = load_linear(l, shapes[i].module, shapes[i].out_features, shapes[i].in_features);
    }
    impl->layers.push_back(std::move(w));
  }
  impl->final_norm = load("model.norm.weight", {H});
  if (c.tie_word_embeddings) {
    impl->lm_head = impl->embed;
  } else {
    impl->lm_head = load("lm_head.weight", {V, H});
  }
  if (!status.ok()) return status;

  RotaryTables(c, &impl->cos, &impl->sin);
  impl->k_cache = EmptyCache(c);
  impl->v_cache = EmptyCache(c);
  return std::unique_ptr<LlamaModel>(new LlamaModel(std::move(impl)));
}

// Runs every layer on `ids` at positions [pos, pos + n) and returns the final-normed hidden states
// [n, H]. With use_cache, K/V go into the cache and attention spans [0, pos + n); without,
// attention spans the n tokens only (pos must be 0) and nothing is stored: the differentiable path.
at::Tensor LlamaModel::Impl::Hidden(const at::Tensor& ids, int64_t pos, bool use_cache) {
  const models::LlamaConfig& c = config;
  const int64_t n = ids.size(0), S = pos + n;
  at::Tensor x = embed.index_select(0, ids);                          // [n, H]
  at::Tensor cs = cos.narrow(0, pos, n), sn = sin.narrow(0, pos, n);  // [n, hd]
  const at::Tensor mask = CausalMask(n, pos, x.device());
  const int bits = precision;
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& w = layers[l];
    const auto lins = w.Projections();
    x = DecoderLayer(
        c, x, w.input_norm, w.post_norm, cs, sn, mask,
        [&](int i, const at::Tensor& in) { return Apply(*lins[i], in, bits); },
        [&](const at::Tensor& k, const at::Tensor& v) -> std::pair<at::Tensor, at::Tensor> {
          if (!use_cache) return {k, v};
          EnsureCapacity(k_cache[l], 1, S, c.max_position_embeddings);
          EnsureCapacity(v_cache[l], 1, S, c.max_position_embeddings);
          k_cache[l].narrow(1, pos, n).copy_(k);
          v_cache[l].narrow(1, pos, n).copy_(v);
          return {k_cache[l].narrow(1, 0, S), v_cache[l].narrow(1, 0, S)};  // [kvh, S, hd]
        });
  }
  return RmsNorm(x, final_norm, c.rms_norm_eps);
}

absl::Status LlamaModel::Prefill(absl::Span<const int> tokens, std::vector<float>* last_logits,
                                 int* argmax) {
  std::vector<float> local;
  std::vector<float>* out = last_logits != nullptr ? last_logits : &local;
  if (auto st = Forward(tokens, /*all_positions=*/false, out); !st.ok()) return st;
  if (argmax != nullptr) *argmax = Argmax(*out);
  return absl::OkStatus();
}

absl::Status LlamaModel::DecodeStep(int token, std::vector<float>* logits, int* argmax) {
  const int one[1] = {token};
  return Prefill(one, logits, argmax);
}

KvView LlamaModel::LastLayerKv() const {
  const Impl& m = *impl_;
  const at::Tensor& k = m.k_cache.back();
  const at::Tensor& v = m.v_cache.back();
  KvView view;
  view.device = Device::kCpu;
  view.dtype = KvDtype::kFloat32;
  view.k = k.data_ptr<float>();
  view.v = v.data_ptr<float>();
  view.kv_heads = static_cast<int>(k.size(0));
  view.length = m.cache_len;
  view.head_dim = static_cast<int>(k.size(2));
  view.head_stride = k.stride(0);
  view.position_stride = k.stride(1);
  return view;
}

void LlamaModel::CopyLastLayerKv(std::vector<float>* k, std::vector<float>* v) const {
  const Impl& m = *impl_;
  c10::InferenceMode guard;
  for (auto [cache, out] : {std::pair<const at::Tensor*, std::vector<float>*>{&m.k_cache.back(), k},
                            {&m.v_cache.back(), v}}) {
    at::Tensor t = cache->narrow(1, 0, m.cache_len).contiguous();
    out->assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
  }
}

absl::Status LlamaModel::StartBranches(absl::Span<const int> prefix_lens) {
  Impl& m = *impl_;
  if (prefix_lens.empty()) return absl::InvalidArgumentError("StartBranches: no branches");
  for (int len : prefix_lens) {
    if (len < 1 || len > m.cache_len) {
      return absl::InvalidArgumentError(absl::StrCat("StartBranches: prefix length ", len,
                                                     " outside [1, ", m.cache_len,
                                                     "] (the cached sequence)"));
    }
  }
  c10::InferenceMode guard;
  const int64_t B = static_cast<int64_t>(prefix_lens.size());
  m.bk_cache.clear();
  m.bv_cache.clear();
  for (size_t l = 0; l < m.layers.size(); ++l) {
    // Each branch starts as a copy of the shared prefix (O(B * prefix * kv_dim) per layer, once).
    const int64_t cap = m.k_cache[l].size(1);  // grown further by BranchHidden when needed
    at::Tensor k = at::zeros({B, m.config.num_key_value_heads, cap, m.config.head_dim}, at::kFloat);
    at::Tensor v = at::zeros_like(k);
    for (int64_t b = 0; b < B; ++b) {
      k[b].narrow(1, 0, prefix_lens[b]).copy_(m.k_cache[l].narrow(1, 0, prefix_lens[b]));
      v[b].narrow(1, 0, prefix_lens[b]).copy_(m.v_cache[l].narrow(1, 0, prefix_lens[b]));
    }
    m.bk_cache.push_back(k);
    m.bv_cache.push_back(v);
  }
  m.branch_len.assign(prefix_lens.begin(), prefix_lens.end());
  return absl::OkStatus();
}

absl::Status LlamaModel::KeepBranches(absl::Span<const int> indices) {
  Impl& m = *impl_;
  const int B = static_cast<int>(m.branch_len.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= B || (i > 0 && indices[i] <= indices[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("KeepBranches: indices must be strictly increasing in [0, ", B, ")"));
    }
  }
  if (indices.empty()) return absl::InvalidArgumentError("KeepBranches: no branch kept");
  c10::InferenceMode guard;
  std::vector<int64_t> idx(indices.begin(), indices.end());
  at::Tensor sel = at::tensor(idx, at::kLong);
  for (size_t l = 0; l < m.bk_cache.size(); ++l) {
    m.bk_cache[l] = m.bk_cache[l].index_select(0, sel);
    m.bv_cache[l] = m.bv_cache[l].index_select(0, sel);
  }
  std::vector<int> lens;
  for (int i : indices) lens.push_back(m.branch_len[i]);
  m.branch_len = lens;
  return absl::OkStatus();
}

int LlamaModel::num_branches() const { return static_cast<int>(impl_->branch_len.size()); }
int LlamaModel::branch_len(int i) const { return impl_->branch_len[i]; }

// One token per branch, each at its own position branch_len[b]; attention masks each branch to its
// own length. Returns final-normed hidden states [B, H] and advances every branch by one.
at::Tensor LlamaModel::Impl::BranchHidden(const at::Tensor& ids) {
  const models::LlamaConfig& c = config;
  const int64_t B = ids.size(0);
  const int64_t nh = c.num_attention_heads, kvh = c.num_key_value_heads, hd = c.head_dim,
                g = nh / kvh;
  std::vector<int64_t> pos_v(branch_len.begin(), branch_len.end());
  at::Tensor pos = at::tensor(pos_v, at::kLong);
  const at::Tensor rows = at::arange(B, at::kLong);
  const int64_t S = *std::max_element(pos_v.begin(), pos_v.end()) + 1;  // keys to look at
  at::Tensor cs = cos.index_select(0, pos).unsqueeze(1),
             sn = sin.index_select(0, pos).unsqueeze(1);  // [B,1,hd]
  // Key j of branch b is visible when j <= pos[b].
  at::Tensor mask = at::arange(S, at::kLong).unsqueeze(0).gt(pos.unsqueeze(1)).view({B, 1, 1, S});
  at::Tensor x = embed.index_select(0, ids);  // [B, H]
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerWeights& w = layers[l];
    at::Tensor h = RmsNorm(x, w.input_norm, c.rms_norm_eps);
    at::Tensor q = Apply(w.q, h, precision).view({B, nh, hd});
    at::Tensor k = Apply(w.k, h, precision).view({B, kvh, hd});
    at::Tensor v = Apply(w.v, h, precision).view({B, kvh, hd});
    q = q * cs + RotateHalf(q) * sn;
    k = k * cs + RotateHalf(k) * sn;
    EnsureCapacity(bk_cache[l], 2, S, c.max_position_embeddings);
    EnsureCapacity(bv_cache[l], 2, S, c.max_position_embeddings);
    // Row (b, :, pos[b], :) of every branch in one indexed write.
    bk_cache[l].index_put_({rows, at::indexing::Slice(), pos}, k);
    bv_cache[l].index_put_({rows, at::indexing::Slice(), pos}, v);
    at::Tensor K = bk_cache[l].narrow(2, 0, S), V = bv_cache[l].narrow(2, 0, S);  // [B, kvh, S, hd]
    at::Tensor qg = q.view({B, kvh, g, hd});
    at::Tensor scores = at::matmul(qg, K.transpose(2, 3)) * scale;  // [B, kvh, g, S]
    scores = scores.masked_fill(mask, -std::numeric_limits<float>::infinity());
    at::Tensor attn =
        at::matmul(at::softmax(scores, -1), V).reshape({B, nh * hd});  // [B, kvh, g, hd]
    x = x + Apply(w.o, attn, precision);
    h = RmsNorm(x, w.post_norm, c.rms_norm_eps);
    x = x +
        Apply(w.down, at::silu(Apply(w.gate, h, precision)) * Apply(w.up, h, precision), precision);
  }
  for (auto& len : branch_len) ++len;
  return RmsNorm(x, final_norm, c.rms_norm_eps);
}

absl::Status LlamaModel::ForwardBranches(absl::Span<const int> tokens, std::vector<float>* logits) {
  Impl& m = *impl_;
  if (tokens.size() != m.branch_len.size() || tokens.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ForwardBranches: ", tokens.size(), " tokens for ", m.branch_len.size(), " branches"));
  }
  for (size_t b = 0; b < tokens.size(); ++b) {
    if (m.branch_len[b] >= m.config.max_position_embeddings) {
      return absl::OutOfRangeError(absl::StrCat("branch ", b, " reached the model's context of ",
                                                m.config.max_position_embeddings));
    }
    if (tokens[b] < 0 || tokens[b] >= m.config.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", tokens[b], " outside the vocabulary"));
    }
  }
  c10::InferenceMode guard;
  at::Tensor ids = at::from_blob(const_cast<int*>(tokens.data()),
                                 {static_cast<int64_t>(tokens.size())}, at::kInt)
                       .to(at::kLong);
  at::Tensor out = at::linear(m.BranchHidden(ids), m.lm_head).contiguous();
  logits->assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  return absl::OkStatus();
}

absl::Status LlamaModel::CheckTokens(absl::Span<const int> tokens, int start) const {
  const models::LlamaConfig& c = impl_->config;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return absl::InvalidArgumentError("no tokens");
  if (start + n > c.max_position_embeddings) {
    return absl::OutOfRangeError(
        absl::StrCat("sequence of ", start + n, " tokens exceeds the model's context of ",
                     c.max_position_embeddings, " (max_position_embeddings)"));
  }
  for (int id : tokens) {
    if (id < 0 || id >= c.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrCat("token id ", id, " outside the vocabulary [0, ", c.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status LlamaModel::Forward(absl::Span<const int> tokens, bool all_positions,
                                 std::vector<float>* logits) {
  Impl& m = *impl_;
  if (auto st = CheckTokens(tokens, m.cache_len); !st.ok()) return st;
  c10::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(tokens.size());
  at::Tensor ids = at::from_blob(const_cast<int*>(tokens.data()), {n}, at::kInt).to(at::kLong);
  at::Tensor x = m.Hidden(ids, m.cache_len, /*use_cache=*/true);
  m.cache_len += static_cast<int>(n);
  if (!all_positions) x = x.narrow(0, n - 1, 1);
  at::Tensor out = at::linear(x, m.lm_head).contiguous();
  logits->assign(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
  return absl::OkStatus();
}

absl::StatusOr<double> LlamaModel::SequenceNll(absl::Span<const int> tokens, int64_t* predicted) {
  if (auto st = CheckTokens(tokens, 0); !st.ok()) return st;
  *predicted = static_cast<int64_t>(tokens.size()) - 1;
  if (*predicted <= 0) return 0.0;
  c10::InferenceMode guard;
  const int64_t n = static_cast<int64_t>(tokens.size());
  at::Tensor ids = at::from_blob(const_cast<int*>(tokens.data()), {n}, at::kInt).to(at::kLong);
  at::Tensor logits =
      at::linear(impl_->Hidden(ids, 0, /*use_cache=*/false).narrow(0, 0, n - 1), impl_->lm_head);
  at::Tensor logp = at::log_softmax(logits.to(at::kDouble), -1);
  at::Tensor target = ids.narrow(0, 1, n - 1).unsqueeze(1);
  return -logp.gather(1, target).sum().item<double>();
}

absl::StatusOr<std::map<std::string, std::vector<float>>> LlamaModel::FisherSensitivity(
    const std::vector<std::vector<int>>& sequences, const std::function<void(int)>& progress) {
  Impl& m = *impl_;
  if (m.anyprec)
    return absl::FailedPreconditionError(
        "sensitivities need a full-precision model, not an any-precision one");
  std::vector<std::pair<std::string, at::Tensor>> params;
  for (size_t l = 0; l < m.layers.size(); ++l) {
    LayerWeights& w = m.layers[l];
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const auto shapes = models::LlamaProjections(m.config);
    const auto lins = w.Projections();
    for (size_t i = 0; i < shapes.size(); ++i)
      params.emplace_back(p + shapes[i].module, lins[i]->dense);
  }
  std::vector<at::Tensor> fisher;
  for (auto& [name, t] : params) {
    t.set_requires_grad(true);
    fisher.push_back(at::zeros_like(t));
  }
  absl::Status status;
  for (size_t s = 0; s < sequences.size() && status.ok(); ++s) {
    const auto& seq = sequences[s];
    status = CheckTokens(seq, 0);
    if (!status.ok() || seq.size() < 2) continue;
    const int64_t n = static_cast<int64_t>(seq.size());
    at::Tensor ids = at::from_blob(const_cast<int*>(seq.data()), {n}, at::kInt).to(at::kLong);
    at::Tensor logits =
        at::linear(m.Hidden(ids, 0, /*use_cache=*/false).narrow(0, 0, n - 1), m.lm_head);
    at::Tensor loss = at::cross_entropy_loss(logits, ids.narrow(0, 1, n - 1));
    loss.backward();
    {
      c10::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) {
        at::Tensor g = params[i].second.grad();
        fisher[i].add_(g * g);
        g.zero_();
      }
    }
    if (progress) progress(static_cast<int>(s + 1));
  }
  for (auto& [name, t] : params) {
    t.mutable_grad() = at::Tensor();  // free the gradient buffers (one copy of every projection)
    t.set_requires_grad(false);
  }
  if (!status.ok()) return status;
  std::map<std::string, std::vector<float>> out;
  for (size_t i = 0; i < params.size(); ++i) {
    at::Tensor f = fisher[i].contiguous();
    out[params[i].first].assign(f.data_ptr<float>(), f.data_ptr<float>() + f.numel());
  }
  return out;
}

}  // namespace pmpd::inference
