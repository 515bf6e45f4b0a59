// The model's tokenizer, one of two kinds behind one interface:
//  - sentencepiece (tokenizer.model, Llama 1/2, Vicuna): BOS prepended on request, no EOS appended,
//    decode strips the dummy-prefix space as Hugging Face's LlamaTokenizer does;
//  - byte-level BPE (models/bpe_tokenizer.h: GGUF metadata, or a Hugging Face tokenizer.json):
//    added/special tokens such as <|im_start|> are recognised in the text; BOS only when the
//    vocabulary asks for it (add_bos_token).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "models/bpe_tokenizer.h"
#include "models/sentencepiece_backend.h"

namespace pmpd::models {

class Tokenizer {
 public:
  // Loads `path`: a .gguf file (its tokenizer metadata), a tokenizer.model, a tokenizer.json, or a
  // model directory holding tokenizer.model (preferred) or tokenizer.json. A chat template, when
  // the model has one, comes from the GGUF metadata or DIR/tokenizer_config.json. Errors name the
  // file.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  ~Tokenizer();

  // add_bos: add the beginning-of-sequence token as this tokenizer's convention does for a prompt
  // (sentencepiece Llama: always; BPE: when the vocabulary's add_bos_token says so).
  std::vector<int> Encode(absl::string_view text, bool add_bos) const;
  std::string Decode(absl::Span<const int> ids) const;
  // The id of a token spelled as in the vocabulary ("<|im_end|>", "</s>"), or -1.
  int TokenId(absl::string_view token) const;
  // The raw chat template text shipped with the model (Jinja), empty when none.
  const std::string& chat_template() const { return chat_template_; }
  bool is_byte_level_bpe() const { return bpe_ != nullptr; }
  // The piece string of one id ("▁the", "<0x0A>"), for diagnostics.
  std::string IdToPiece(int id) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer();
  std::string path_;
  std::string chat_template_;
  std::unique_ptr<SentencePieceBackend> sp_;  // exactly one of sp_ and bpe_
  std::unique_ptr<BpeTokenizer> bpe_;
};

// Turns a stream of generated ids into text as it is produced: Push returns the newly completed
// text (possibly empty while a multi-byte character is still incomplete); it never emits part of a
// UTF-8 character that later ids could complete, and the pushes concatenate to the full decode.
// Cost: one decode of the ids since the last emitted boundary per Push.
class IncrementalDetokenizer {
 public:
  // `context` are ids already shown (e.g. the prompt); they condition spacing but are not emitted.
  IncrementalDetokenizer(const Tokenizer& tok, absl::Span<const int> context);
  std::string Push(int id);

 private:
  const Tokenizer& tok_;
  std::vector<int> ids_;
  size_t prefix_offset_ = 0;  // window start used for decoding
  size_t read_offset_ = 0;    // ids before this are already emitted
  size_t emitted_ = 0;        // bytes of the ids from read_offset_ on already emitted (a held-back
                              // incomplete UTF-8 tail follows them)
};

}  // namespace pmpd::models
