// The KV-cache classifier as a LibTorch module: the one definition the trainer fits and the
// runtime evaluates. Heavy include (torch/nn): only kv_classifier.cc and trainer/ include it.
//
// Reference architecture (PMPD's KVCacheClassifier; state-dict keys query, ln.weight, ln.bias,
// project.0.weight, project.0.bias, project.2.weight, project.2.bias), for K, V of the last layer
// after prefill, [B, H, T, D] (H KV heads, D head dim):
//   Kbar, Vbar = mean over heads                                   [B, T, D]
//   w[b,i,j,:] = softmax_t(query[i,j,:] . Kbar[b,t,:] / sqrt(D))   query: [H, H, D]; padded t
//   masked a[b,i,:]   = mean_j sum_t dropout(w)[b,i,j,t] Vbar[b,t,:]       [B, H, D] x          = a
//   transposed to [B, D, H], flattened (index d*H + i), as the reference does logits     =
//   Linear(ReLU(Linear(LayerNorm(x))))                 [B, classes]
// The reference returns softmax(logits); we return logits (argmax is the same; training uses them
// with cross-entropy).
//
// Prompt-length input (ours, architecture "pmpd-reference+prompt-length"): the attention pooling
// above averages over positions and so cannot see how long the prompt is, which on SmolLM2's
// labels predicts the switch step better than the pooled cache does
// (bench/results/smollm2_pmpd.json, linear_probe_cpu). With it, a multinomial logistic
// regression on the log length is added to the logits:
//   logits = Linear(ReLU(Linear(LayerNorm(x)))) + length((ln T - length_center) / length_scale)
// T = real (unpadded) positions; length.weight [C, 1], length.bias [C]. Added beside the MLP
// rather than fed into it as one more input, where it competes with H*D pooled features. The
// trainer standardises ln T over its training split (length_center, length_scale: mean and
// standard deviation) and folds them into length.weight and length.bias when it exports, so a file
// holds the map from ln T itself (center 0, scale 1 at run time).
#pragma once

#include <torch/nn.h>

namespace pmpd::scheduler {

class KvClassifierNetImpl : public torch::nn::Module {
 public:
  KvClassifierNetImpl(int64_t kv_heads, int64_t head_dim, int64_t num_classes, double dropout,
                      bool prompt_length_input = false);

  // k, v: [B, H, T, D]; mask: [B, T] bool, true for real positions (undefined = no padding).
  torch::Tensor forward(const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& mask = {});
  // The same after the mean over heads: kbar, vbar [B, T, D]. The trainer pools once at load.
  torch::Tensor ForwardPooled(const torch::Tensor& kbar, const torch::Tensor& vbar,
                              const torch::Tensor& mask = {});

  double length_center = 0, length_scale = 1;  // not parameters: see above

  int64_t kv_heads, head_dim, num_classes;
  bool prompt_length_input;
  torch::Tensor query;
  torch::nn::LayerNorm ln{nullptr};
  torch::nn::Sequential project{nullptr};
  torch::nn::Linear length{nullptr};  // prompt_length_input only
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(KvClassifierNet);

}  // namespace pmpd::scheduler
