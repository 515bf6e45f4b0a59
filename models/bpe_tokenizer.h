// Byte-level BPE (the GPT-2 family: SmolLM, Llama 3, Qwen, ...) as Hugging Face `tokenizers` runs
// it: added/special tokens are matched first (longest match, left to right) and never split; the
// rest is cut by the pre-tokenizer (a sequence of regex splits, PCRE2 with Unicode properties and
// lookahead), each piece is spelled in GPT-2's byte alphabet (bytes_to_unicode) and merged by merge
// rank. Decoding maps the byte alphabet back to bytes; added tokens decode to their text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

// Everything a byte-level BPE tokenizer needs, from GGUF metadata or a tokenizer.json.
struct BpeVocab {
  // id -> token, spelled in the byte alphabet ("Ġthe"); added tokens as their text.
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  // Ids matched whole in the input before BPE (HF "added_tokens"; GGUF token types 3 control and
  // 4 user-defined). `special` ones are the control tokens (skipped by Decode(skip_special)).
  std::vector<int> added_ids;
  std::vector<bool> added_special;  // parallel to added_ids
  // Pre-tokenizer: regexes applied in sequence, each splitting every piece of the previous one
  // ("isolated" behaviour: matches and the text between them both become pieces).
  std::vector<std::string> split_regexes;
  int bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;
  bool add_bos = false;  // whether Encode(text, add_special=true) prepends BOS
  // HF BPE "ignore_merges" (Llama 3): a piece that is itself a token is taken whole, unmerged.
  bool ignore_merges = false;
  // HF normalizer NFC (Qwen2's tokenizer.json): the text between special tokens is put in Unicode
  // normalization form C before anything else (ICU). GGUF files carry no normalizer.
  bool normalize_nfc = false;
  std::string chat_template;  // raw Jinja text from the model files; empty when none
};

// Pre-tokenizer regex sequences by llama.cpp's `tokenizer.ggml.pre` name: "gpt2" (and "default"),
// "smollm" (digits split one by one, then GPT-2), "llama3"/"llama-bpe"/"llama-v3", "qwen2".
// Unknown names: an error listing the known ones.
absl::StatusOr<std::vector<std::string>> PreTokenizerRegexes(absl::string_view pre_name);
// Whether llama.cpp's pre-tokenizer `pre_name` also means HF BPE's ignore_merges (a piece that is
// itself a token is taken whole): the Llama 3 names. Sets BpeVocab.ignore_merges for GGUF files.
bool PreTokenizerIgnoresMerges(absl::string_view pre_name);

// The fields of a Hugging Face tokenizer_config.json that we use.
struct HfTokenizerConfig {
  std::string chat_template;  // a string, or the "default" entry of a [{name, template}] list
  int add_bos_token = -1;     // -1 absent, else 0/1
  std::string bos_token, eos_token;  // a string or {"content": ...}; empty when absent
};
// Reads `path` (a tokenizer_config.json). A missing file is NotFound; malformed JSON or a field of
// the wrong type is an error naming the file and the field.
absl::StatusOr<HfTokenizerConfig> ReadTokenizerConfig(const std::string& path);

class BpeTokenizer {
 public:
  // Validates the vocabulary (no duplicate tokens, merges whose parts and result are tokens,
  // special ids in range) and compiles the regexes. `source` names the file in errors.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(BpeVocab vocab,
                                                              absl::string_view source);
  // Reads a Hugging Face tokenizer.json (model type BPE, no normalizer or NFC, pre_tokenizer
  // ByteLevel or a Sequence of Split(Isolated)/Digits/ByteLevel, ByteLevel decoder, added_tokens,
  // TemplateProcessing BOS) and, when present beside it, tokenizer_config.json (chat_template,
  // add_bos_token, bos/eos token names). Anything else: an error naming the file and the part.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> FromTokenizerJson(const std::string& path);
  ~BpeTokenizer();

  // add_special: prepend BOS when the vocabulary says so (add_bos). Special tokens in `text` are
  // recognised. Invalid UTF-8 never fails: each maximal ill-formed subpart becomes U+FFFD first
  // (Python's decode(errors="replace"), llama.cpp's choice), so the ids are HF's for that text.
  // Thread-safe. Cost: O(text length x log piece length); merged pieces are cached.
  std::vector<int> Encode(absl::string_view text, bool add_special) const;
  // The pieces (bytes, invalid UTF-8 replaced) the pre-tokenizer cuts `text` into, without
  // added-token matching: for tests and diagnostics.
  std::vector<std::string> PreTokenize(absl::string_view text) const;
  // Bytes of the ids concatenated (may end inside a UTF-8 character); out-of-range ids dropped;
  // skip_special drops control tokens.
  std::string Decode(const std::vector<int>& ids, bool skip_special = false) const;
  int vocab_size() const;
  const BpeVocab& vocab() const;
  // The id of a token spelled as in the vocabulary (e.g. "<|im_end|>"), or -1.
  int TokenId(absl::string_view token) const;

  // Writes tokenizer.json (+ tokenizer_config.json with the chat template, bos/eos, add_bos) into
  // `dir`, atomically, so a directory we write (pmpd-quantize's output) carries the tokenizer in a
  // form both we and Hugging Face read.
  absl::Status WriteHuggingFaceFiles(const std::string& dir) const;

 private:
  struct Impl;
  explicit BpeTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::models
