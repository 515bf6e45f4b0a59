// A firewall around sentencepiece: its headers declare `namespace absl { using std::string_view;
// }`, which collides with the real Abseil, so only sentencepiece_backend.cc includes them (and no
// Abseil).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace pmpd::models {

class SentencePieceBackend {
 public:
  SentencePieceBackend();
  ~SentencePieceBackend();
  // Returns false and sets *error on failure.
  bool Load(const std::string& path, std::string* error);
  std::vector<int> Encode(std::string_view text) const;
  std::string Decode(const std::vector<int>& ids) const;
  std::string IdToPiece(int id) const;
  // The id of `piece`, or -1 when the vocabulary has no such piece.
  int PieceToId(std::string_view piece) const;
  int vocab_size() const;
  int bos_id() const;
  int eos_id() const;

  // Runs the sentencepiece trainer with command-line style `args`.
  static bool Train(const std::string& args, std::string* error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmpd::models
