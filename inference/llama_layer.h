// The Llama decoder math on ATen tensors of any device, shared by the reference engine
// (llama_model.cc) and the streamed sensitivity pass (fisher_stream.cc), so that both compute the
// same numbers op for op (transformers' LlamaForCausalLM: RMSNorm in float32, rotate-half rotary
// embedding, GQA attention with softmax in float32, SwiGLU).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <utility>

#include "models/llama_config.h"

namespace pmpd::inference {

at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& w, double eps);
at::Tensor RotateHalf(const at::Tensor& x);
// Rotary tables cos, sin [max_position_embeddings, head_dim], float32 on the CPU (rope scaling
// types default, linear and llama3 as transformers' rope init functions).
void RotaryTables(const models::LlamaConfig& c, at::Tensor* cos, at::Tensor* sin);
// True where query i (absolute position pos + i) must not see key j: [n, pos + n] bool on
// `device`; undefined for n == 1 (one query sees every key).
at::Tensor CausalMask(int64_t n, int64_t pos, const at::Device& device);

// Projection i of a layer (models::LlamaProjections' order: q, k, v, o, gate, up, down) applied
// to an input [n, in]: y = input W_i^T.
using ProjectionFn = std::function<at::Tensor(int i, const at::Tensor& input)>;
// The keys and values attention reads, given this call's rotated keys and values [kvh, n, hd]:
// the same tensors, or a cache that holds them after earlier positions.
using KvFn =
    std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor& k, const at::Tensor& v)>;

// One decoder layer on the hidden states x [n, H] of one sequence: cs, sn [n, hd] are the rotary
// rows of its positions, mask from CausalMask (or undefined). Returns x after the layer.
// Differentiable (autograd records it unless a guard says otherwise).
at::Tensor DecoderLayer(const models::LlamaConfig& c, const at::Tensor& x,
                        const at::Tensor& input_norm, const at::Tensor& post_norm,
                        const at::Tensor& cs, const at::Tensor& sn, const at::Tensor& mask,
                        const ProjectionFn& project, const KvFn& kv);

}  // namespace pmpd::inference
