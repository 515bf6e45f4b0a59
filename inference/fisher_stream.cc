#include "inference/fisher_stream.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "inference/llama_layer.h"
#include "models/anyprec_checkpoint.h"

namespace pmpd::inference {
namespace {

// One layer's tensors on the device; the projections in models::LlamaProjections' order.
struct LayerTensors {
  at::Tensor input_norm, post_norm;
  std::array<at::Tensor, 7> proj;
};

std::string FirstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

int64_t Bytes(const std::vector<at::Tensor>& ts) {
  int64_t b = 0;
  for (const at::Tensor& t : ts) b += t.defined() ? t.numel() * t.element_size() : 0;
  return b;
}

}  // namespace

struct FisherStream::Impl {
  models::LlamaConfig config;
  std::unique_ptr<models::WeightSource> src;
  at::Device device = at::kCPU;
  FisherStreamOptions options;
  int seg = 1;
  at::Tensor embed, final_norm, lm_head, cos, sin;
  std::vector<at::Tensor> ids;                       // per sequence, int64 on the device
  std::vector<std::vector<at::Tensor>> checkpoints;  // [segment][sequence]: input of its 1st layer
  std::map<int, std::vector<at::Tensor>> inputs;     // layer -> per sequence, current segment
  std::vector<at::Tensor> grad;                      // per sequence: dL/d(output of layer next)
  int next = -1;                                     // layer whose output `grad` holds
  int64_t peak_bytes = 0;
  absl::Status failed;  // after an error mid-walk the state is torn: later calls return it

  int layers() const { return config.num_hidden_layers; }

  void Account() {
    int64_t b = Bytes(grad);
    for (const auto& c : checkpoints) b += Bytes(c);
    for (const auto& [l, v] : inputs) b += Bytes(v);
    peak_bytes = std::max(peak_bytes, b);
  }

  absl::StatusOr<at::Tensor> Load(const std::string& name, const std::vector<int64_t>& shape) {
    auto t = models::FindWithShape(*src, name, shape);
    if (!t.ok()) return t.status();
    const models::TensorView& v = **t;
    at::Tensor host = at::empty(shape, at::kFloat);
    if (auto st = models::ToFloat32(v, host.data_ptr<float>()); !st.ok()) return st;
    src->ReleasePages(v);
    return device.is_cpu() ? host : host.to(device);
  }

  absl::StatusOr<LayerTensors> LoadLayer(int l, bool requires_grad) {
    LayerTensors w;
    const std::string p = absl::StrCat("model.layers.", l, ".");
    const int64_t H = config.hidden_size;
    auto in = Load(p + "input_layernorm.weight", {H});
    if (!in.ok()) return in.status();
    auto post = Load(p + "post_attention_layernorm.weight", {H});
    if (!post.ok()) return post.status();
    w.input_norm = *in;
    w.post_norm = *post;
    const auto shapes = models::LlamaProjections(config);
    for (size_t i = 0; i < shapes.size(); ++i) {
      auto t =
          Load(p + shapes[i].module + ".weight", {shapes[i].out_features, shapes[i].in_features});
      if (!t.ok()) return t.status();
      w.proj[i] = *t;
      if (requires_grad) w.proj[i].set_requires_grad(true);
    }
    return w;
  }

  at::Tensor Forward(const LayerTensors& w, const at::Tensor& x, int64_t n) {
    return DecoderLayer(
        config, x, w.input_norm, w.post_norm, cos.narrow(0, 0, n), sin.narrow(0, 0, n),
        CausalMask(n, 0, device),
        [&](int i, const at::Tensor& in) { return at::linear(in, w.proj[i]); },
        [](const at::Tensor& k, const at::Tensor& v) { return std::make_pair(k, v); });
  }

  void Progress(const std::string& phase, int64_t done, int64_t total) {
    if (options.progress) options.progress(phase, done, total);
  }

  // The inputs of layers [first of l's segment, l], recomputed from the segment's checkpoint.
  absl::Status EnsureInputs(int l) {
    if (inputs.count(l)) return absl::OkStatus();
    inputs.clear();  // the previous segment's are consumed
    const int s = l / seg, first = s * seg;
    std::vector<at::Tensor> x = checkpoints[s];
    checkpoints.resize(s);  // this segment's checkpoint lives on as inputs[first]
    c10::NoGradGuard no_grad;
    inputs[first] = x;
    for (int j = first; j < l; ++j) {
      auto w = LoadLayer(j, /*requires_grad=*/false);
      if (!w.ok()) return w.status();
      for (size_t i = 0; i < x.size(); ++i) x[i] = Forward(*w, x[i], ids[i].size(0));
      inputs[j + 1] = x;
      Account();
    }
    return absl::OkStatus();
  }

  // Walks the gradient from layer l's output to its input; with `fisher`, also sums the squared
  // weight gradients per sequence and returns them.
  absl::StatusOr<std::map<std::string, std::vector<float>>> Backward(int l, bool fisher) {
    if (auto st = EnsureInputs(l); !st.ok()) return st;
    auto w = LoadLayer(l, fisher);
    if (!w.ok()) return w.status();
    std::vector<at::Tensor> f;
    if (fisher) {
      for (const at::Tensor& p : w->proj) f.push_back(at::zeros_like(p));
    }
    std::vector<at::Tensor>& in = inputs[l];
    const std::string phase = absl::StrCat("layer ", l, fisher ? "" : " (skipped)");
    for (size_t i = 0; i < in.size(); ++i) {
      at::Tensor h = in[i].detach().requires_grad_(true);
      at::Tensor out = Forward(*w, h, ids[i].size(0));
      out.backward(grad[i]);
      if (fisher) {
        c10::NoGradGuard no_grad;
        for (size_t j = 0; j < f.size(); ++j) {
          at::Tensor g = w->proj[j].grad();
          f[j].add_(g * g);
          g.zero_();
        }
      }
      grad[i] = h.grad();
      in[i] = at::Tensor();
      Progress(phase, static_cast<int64_t>(i) + 1, static_cast<int64_t>(in.size()));
    }
    inputs.erase(l);
    std::map<std::string, std::vector<float>> out;
    if (!fisher) return out;
    const auto shapes = models::LlamaProjections(config);
    for (size_t j = 0; j < f.size(); ++j) {
      at::Tensor host = f[j].to(at::kCPU).contiguous();
      out[absl::StrCat("model.layers.", l, ".", shapes[j].module)].assign(
          host.data_ptr<float>(), host.data_ptr<float>() + host.numel());
    }
    return out;
  }
};

FisherStream::FisherStream(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FisherStream::~FisherStream() = default;
int FisherStream::num_layers() const { return impl_->layers(); }
int64_t FisherStream::peak_activation_bytes() const { return impl_->peak_bytes; }

absl::StatusOr<std::unique_ptr<FisherStream>> FisherStream::Create(
    const std::string& model, const std::vector<std::vector<int>>& sequences,
    const FisherStreamOptions& options) {
  try {  // LibTorch reports out-of-memory as an exception: a Status at this boundary
    return CreateImpl(model, sequences, options);
  } catch (const std::exception& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(model, ": sensitivity forward pass: ", FirstLine(e.what())));
  }
}

absl::StatusOr<std::unique_ptr<FisherStream>> FisherStream::CreateImpl(
    const std::string& model, const std::vector<std::vector<int>>& sequences,
    const FisherStreamOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  if (options.device == "cuda") {
    if (at::detail::getCUDAHooks().getNumGPUs() <= 0) {
      return absl::FailedPreconditionError(
          "device cuda: LibTorch sees no CUDA device on this machine");
    }
    impl->device = at::Device(at::kCUDA, 0);
  } else if (options.device != "cpu") {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", options.device, "\": expected cpu or cuda"));
  }
  auto config = models::LoadLlamaConfig(model);
  if (!config.ok()) return config.status();
  impl->config = *config;
  auto anyprec = models::LoadAnyprecInfo(model);
  if (!anyprec.ok()) return anyprec.status();
  if (anyprec->has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        model, ": sensitivities need a full-precision model, not an any-precision one"));
  }
  auto src = models::OpenWeights(model, *config);
  if (!src.ok()) return src.status();
  impl->src = std::move(*src);
  const models::LlamaConfig& c = impl->config;
  const int L = c.num_hidden_layers;
  impl->seg = options.checkpoint_every > 0
                  ? options.checkpoint_every
                  : std::max(1, static_cast<int>(std::ceil(std::sqrt(static_cast<double>(L)))));
  for (size_t s = 0; s < sequences.size(); ++s) {
    const auto& seq = sequences[s];
    if (static_cast<int64_t>(seq.size()) > c.max_position_embeddings) {
      return absl::OutOfRangeError(absl::StrCat("calibration sequence ", s, " of ", seq.size(),
                                                " tokens exceeds the model's context of ",
                                                c.max_position_embeddings));
    }
    for (int id : seq) {
      if (id < 0 || id >= c.vocab_size) {
        return absl::InvalidArgumentError(absl::StrCat("calibration sequence ", s, ": token id ",
                                                       id, " outside the vocabulary [0, ",
                                                       c.vocab_size, ")"));
      }
    }
    if (seq.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("calibration sequence ", s, " is empty"));
    }
    if (seq.size() < 2) continue;  // nothing to predict (as LlamaModel::FisherSensitivity)
    std::vector<int64_t> v(seq.begin(), seq.end());
    impl->ids.push_back(at::tensor(v, at::kLong).to(impl->device));
  }
  Impl& m = *impl;
  const int64_t H = c.hidden_size, V = c.vocab_size;
  auto embed = m.Load("model.embed_tokens.weight", {V, H});
  if (!embed.ok()) return embed.status();
  m.embed = *embed;
  auto norm = m.Load("model.norm.weight", {H});
  if (!norm.ok()) return norm.status();
  m.final_norm = *norm;
  if (c.tie_word_embeddings) {
    m.lm_head = m.embed;
  } else {
    auto head = m.Load("lm_head.weight", {V, H});
    if (!head.ok()) return head.status();
    m.lm_head = *head;
  }
  RotaryTables(c, &m.cos, &m.sin);  // on the CPU, as the reference engine, then moved
  m.cos = m.cos.to(m.device);
  m.sin = m.sin.to(m.device);

  // Forward, keeping the input of every seg-th layer.
  std::vector<at::Tensor> x;
  {
    c10::NoGradGuard no_grad;
    for (const at::Tensor& id : m.ids) x.push_back(m.embed.index_select(0, id));
    for (int l = 0; l < L; ++l) {
      if (l % m.seg == 0) m.checkpoints.push_back(x);
      auto w = m.LoadLayer(l, /*requires_grad=*/false);
      if (!w.ok()) return w.status();
      for (size_t i = 0; i < x.size(); ++i) x[i] = m.Forward(*w, x[i], m.ids[i].size(0));
      m.Account();
      m.Progress("forward", l + 1, L);
    }
  }
  // The loss gradient at the last layer's output, as FisherSensitivity's loss.
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t n = m.ids[i].size(0);
    at::Tensor xl = x[i].detach().requires_grad_(true);
    at::Tensor logits =
        at::linear(RmsNorm(xl, m.final_norm, c.rms_norm_eps).narrow(0, 0, n - 1), m.lm_head);
    at::Tensor loss = at::cross_entropy_loss(logits, m.ids[i].narrow(0, 1, n - 1));
    loss.backward();
    m.grad.push_back(xl.grad());
    x[i] = at::Tensor();
  }
  m.Account();
  m.next = L - 1;
  return std::unique_ptr<FisherStream>(new FisherStream(std::move(impl)));
}

absl::StatusOr<std::map<std::string, std::vector<float>>> FisherStream::Layer(int l) {
  Impl& m = *impl_;
  if (!m.failed.ok()) return m.failed;
  if (l < 0 || l > m.next) {
    return absl::InvalidArgumentError(
        absl::StrCat("FisherStream::Layer(", l, "): layers come in decreasing order; the next one ",
                     "may be 0..", m.next));
  }
  absl::StatusOr<std::map<std::string, std::vector<float>>> out =
      absl::InternalError("not computed");
  try {  // LibTorch reports out-of-memory as an exception: a Status at this boundary
    absl::Status walked;
    while (walked.ok() && m.next > l) {
      walked = m.Backward(m.next, /*fisher=*/false).status();
      if (walked.ok()) --m.next;
    }
    out = walked.ok() ? m.Backward(l, /*fisher=*/true) : walked;
  } catch (const std::exception& e) {
    out = absl::ResourceExhaustedError(
        absl::StrCat("sensitivities of layer ", l, ": ", FirstLine(e.what())));
  }
  if (!out.ok()) {
    m.failed = out.status();
    return out;
  }
  m.next = l - 1;
  return out;
}

}  // namespace pmpd::inference
