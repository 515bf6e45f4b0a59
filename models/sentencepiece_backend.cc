// No Abseil header may be included here (see sentencepiece_backend.h).
#include "models/sentencepiece_backend.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

namespace pmpd::models {

struct SentencePieceBackend::Impl {
  sentencepiece::SentencePieceProcessor sp;
};

SentencePieceBackend::SentencePieceBackend() : impl_(std::make_unique<Impl>()) {}
SentencePieceBackend::~SentencePieceBackend() = default;

bool SentencePieceBackend::Load(const std::string& path, std::string* error) {
  const auto st = impl_->sp.Load(path);
  if (!st.ok()) *error = st.ToString();
  return st.ok();
}

std::vector<int> SentencePieceBackend::Encode(std::string_view text) const {
  std::vector<int> ids;
  impl_->sp.Encode(text, &ids).IgnoreError();
  return ids;
}

std::string SentencePieceBackend::Decode(const std::vector<int>& ids) const {
  std::string out;
  impl_->sp.Decode(ids, &out).IgnoreError();
  return out;
}

std::string SentencePieceBackend::IdToPiece(int id) const { return impl_->sp.IdToPiece(id); }
int SentencePieceBackend::PieceToId(std::string_view piece) const {
  // sentencepiece answers unk_id for pieces it does not know.
  const int id = impl_->sp.PieceToId(piece);
  if (id < 0 || (id == impl_->sp.unk_id() && impl_->sp.IdToPiece(id) != piece)) return -1;
  return id;
}
int SentencePieceBackend::vocab_size() const { return impl_->sp.GetPieceSize(); }
int SentencePieceBackend::bos_id() const { return impl_->sp.bos_id(); }
int SentencePieceBackend::eos_id() const { return impl_->sp.eos_id(); }

bool SentencePieceBackend::Train(const std::string& args, std::string* error) {
  const auto st = sentencepiece::SentencePieceTrainer::Train(args);
  if (!st.ok()) *error = st.ToString();
  return st.ok();
}

}  // namespace pmpd::models
