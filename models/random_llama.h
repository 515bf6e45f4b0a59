// A deterministic random Llama checkpoint writer: the weights come from a splitmix64 stream that
// scripts/make_golden_random_llama.py reproduces bit for bit, so golden logits from Hugging Face
// transformers can be checked without committing weights. Also used as the built-in demo model when
// the shared assets are absent.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "models/llama_config.h"

namespace pmpd::models {

// The i-th value of tensor stream `seed`: splitmix64, top 24 bits -> u in [0,1), (2u-1)*scale in
// double, rounded to float32. Exposed for the test that pins it to the Python generator.
float RandomWeight(uint64_t* state, double scale);

// Writes DIR/config.json and DIR/model.safetensors (F32). Tensor order and scales are documented in
// random_llama.cc and mirrored by the Python script. Creates DIR if needed.
absl::Status WriteRandomLlama(const std::string& dir, const LlamaConfig& config, uint64_t seed);

// Trains a small byte-fallback BPE sentencepiece model on built-in English text and writes
// DIR/tokenizer.model; returns its vocabulary size through `vocab_size`.
absl::Status WriteTinyTokenizer(const std::string& dir, int* vocab_size);

// The demo model used when no real model is available: 2 layers, hidden 64, GQA, untied.
LlamaConfig TinyDemoConfig(int vocab_size);

}  // namespace pmpd::models
