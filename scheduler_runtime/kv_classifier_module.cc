#include "scheduler_runtime/kv_classifier_module.h"

#include <cmath>
#include <limits>

namespace pmpd::scheduler {

KvClassifierNetImpl::KvClassifierNetImpl(int64_t h, int64_t d, int64_t c, double p,
                                         bool length_input)
    : kv_heads(h), head_dim(d), num_classes(c), prompt_length_input(length_input) {
  query = register_parameter("query", torch::empty({h, h, d}));
  torch::nn::init::xavier_normal_(query);
  ln = register_module("ln", torch::nn::LayerNorm(torch::nn::LayerNormOptions({h * d})));
  project = register_module(
      "project", torch::nn::Sequential(torch::nn::Linear(h * d, h * d), torch::nn::ReLU(),
                                       torch::nn::Linear(h * d, c)));
  dropout = register_module("dropout", torch::nn::Dropout(p));
  if (length_input) length = register_module("length", torch::nn::Linear(1, c));
}

torch::Tensor KvClassifierNetImpl::forward(const torch::Tensor& k, const torch::Tensor& v,
                                           const torch::Tensor& mask) {
  return ForwardPooled(k.to(torch::kFloat32).mean(1), v.to(torch::kFloat32).mean(1), mask);
}

torch::Tensor KvClassifierNetImpl::ForwardPooled(const torch::Tensor& kbar,
                                                 const torch::Tensor& vbar,
                                                 const torch::Tensor& mask) {
  const int64_t B = kbar.size(0);
  // [H, H, D] x [B, 1, D, T] -> [B, H, H, T]
  torch::Tensor scores = torch::matmul(query.unsqueeze(0), kbar.transpose(1, 2).unsqueeze(1)) /
                         std::sqrt(static_cast<double>(head_dim));
  if (mask.defined()) {
    scores = scores.masked_fill(mask.logical_not().view({B, 1, 1, -1}),
                                -std::numeric_limits<float>::infinity());
  }
  torch::Tensor w = dropout(torch::softmax(scores, -1));
  torch::Tensor attended = torch::matmul(w, vbar.unsqueeze(1)).mean(2);   // [B, H, D]
  torch::Tensor x = attended.transpose(1, 2).contiguous().view({B, -1});  // [B, D*H], index d*H + i
  torch::Tensor logits = project->forward(ln(x));
  if (prompt_length_input) {
    torch::Tensor t = mask.defined() ? mask.sum(1).to(torch::kFloat32)
                                     : torch::full({B}, static_cast<double>(kbar.size(1)),
                                                   kbar.options().dtype(torch::kFloat32));
    logits = logits + length((t.log() - length_center).div(length_scale).unsqueeze(1));
  }
  return logits;
}

}  // namespace pmpd::scheduler
