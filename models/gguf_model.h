// A GGUF file as a Llama model: the config from its metadata, its tensors under Hugging Face names
// (dequantized to float32, Q/K rows un-permuted), its tokenizer vocabulary. What lets every tool
// take `--model file.gguf` where it takes a Hugging Face directory.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "models/anyprec_checkpoint.h"
#include "models/bpe_tokenizer.h"
#include "models/gguf.h"
#include "models/llama_config.h"

namespace pmpd::models {

// The Llama config a GGUF file describes. general.architecture must be "llama" (others refused by
// name); sizes from llama.* keys (block_count, embedding_length, feed_forward_length,
// attention.head_count[_kv], rope.freq_base (default 10000), attention.layer_norm_rms_epsilon,
// context_length, attention.key_length or rope.dimension_count, vocab_size or the token list's
// length; rope.scaling.type none or linear); tied embeddings when there is no output.weight;
// bos/eos from tokenizer.ggml.*; checked like a config.json (FinishLlamaConfig). Refused by name:
// mixture-of-experts (expert_count > 0), llama3-style rope factors (a rope_freqs.weight tensor),
// partial rotary. Errors: "<file>: <problem>".
absl::StatusOr<LlamaConfig> LlamaConfigFromGguf(const GgufFile& file);

// The tensors of a GGUF llama file under Hugging Face names
// ("model.layers.0.self_attn.q_proj.weight"), dequantized to F32 on first use (then kept: Find
// returns a stable pointer) with the Q/K row permutation of llama.cpp's converter undone. Unknown
// tensor names are ignored; a missing one is NotFound naming the file.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenGgufWeights(const std::string& path);

// The byte-level BPE vocabulary of a GGUF file (tokenizer.ggml.model "gpt2"): tokens, merges,
// token types (3 control, 4 user-defined -> added tokens), pre-tokenizer from tokenizer.ggml.pre,
// special ids, add_bos_token, tokenizer.chat_template. Other tokenizer models, or missing
// tokenizer metadata: an error naming the file and the key.
absl::StatusOr<BpeVocab> BpeVocabFromGguf(const GgufFile& file);

// Writes the tokenizer of the GGUF file at `gguf_path` into `out_dir` as Hugging Face files
// (tokenizer.json, tokenizer_config.json: BpeVocabFromGguf -> BpeTokenizer::Create ->
// WriteHuggingFaceFiles), so a checkpoint directory made from a GGUF (pmpd-quantize's output)
// carries its tokenizer. Errors name the file.
absl::Status WriteTokenizerFilesFromGguf(const std::string& gguf_path, const std::string& out_dir);

}  // namespace pmpd::models
