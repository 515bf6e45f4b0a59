// Llama-convention tokenizer over a sentencepiece model (tokenizer.model): BOS prepended on request,
// no EOS appended, decode strips the dummy-prefix space as Hugging Face's LlamaTokenizer does.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "models/sentencepiece_backend.h"

namespace pmpd::models {

class Tokenizer {
 public:
  // Loads `path` (a tokenizer.model file, or a directory holding one). Errors name the file.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  ~Tokenizer();

  std::vector<int> Encode(absl::string_view text, bool add_bos) const;
  std::string Decode(absl::Span<const int> ids) const;
  // The piece string of one id ("▁the", "<0x0A>"), for diagnostics.
  std::string IdToPiece(int id) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;
  const std::string& path() const { return path_; }

 private:
  Tokenizer() = default;
  std::string path_;
  SentencePieceBackend sp_;
};

// Turns a stream of generated ids into text as it is produced: Push returns the newly completed
// text (possibly empty while a multi-byte character is still incomplete). Cost: one decode of the
// ids since the last emitted boundary per Push.
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
};

}  // namespace pmpd::models
