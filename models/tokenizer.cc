#include "models/tokenizer.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "models/file_util.h"
#include "models/gguf.h"
#include "models/gguf_model.h"

namespace pmpd::models {
namespace {

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The chat template of DIR/tokenizer_config.json beside `file`, empty when there is none.
absl::StatusOr<std::string> ChatTemplateBeside(const std::string& file) {
  const std::string config = JoinPath(base::DirName(file), "tokenizer_config.json");
  if (!FileExists(config)) return std::string();
  auto c = ReadTokenizerConfig(config);
  if (!c.ok()) return c.status();
  return c->chat_template;
}

// Length of the longest prefix of `s` that does not end inside a UTF-8 character that later bytes
// could still complete. Invalid bytes count as complete: no continuation can repair them.
size_t CompleteUtf8Prefix(absl::string_view s) {
  const size_t n = s.size();
  // A character is at most 4 bytes: only the last 3 bytes can be an incomplete start.
  for (size_t back = 1; back <= 3 && back <= n; ++back) {
    const auto b = static_cast<unsigned char>(s[n - back]);
    if ((b & 0xC0) == 0x80) continue;  // continuation byte: look further back for the lead
    int need = 0;
    if (b >= 0xC2 && b <= 0xDF)
      need = 2;
    else if (b >= 0xE0 && b <= 0xEF)
      need = 3;
    else if (b >= 0xF0 && b <= 0xF4)
      need = 4;
    if (need == 0 || static_cast<size_t>(need) <= back)
      return n;  // ASCII, invalid lead or complete
    // The bytes after the lead must still be a valid start of its sequence (E0 A0.., ED 80-9F,
    // ...).
    if (back >= 2) {
      const auto c = static_cast<unsigned char>(s[n - back + 1]);
      const unsigned char lo = b == 0xE0 ? 0xA0 : b == 0xF0 ? 0x90 : 0x80;
      const unsigned char hi = b == 0xED ? 0x9F : b == 0xF4 ? 0x8F : 0xBF;
      if (c < lo || c > hi) return n;
    }
    return n - back;
  }
  return n;
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::string file = path;
  if (IsDirectory(path) || !FileExists(path)) {
    const std::string model = JoinPath(path, "tokenizer.model");
    const std::string json = JoinPath(path, "tokenizer.json");
    if (FileExists(model)) {
      file = model;
    } else if (FileExists(json)) {
      file = json;
    } else if (IsDirectory(path) ||
               !(absl::EndsWith(path, ".gguf") || absl::EndsWith(path, ".json") ||
                 absl::EndsWith(path, ".model"))) {
      // Named after tokenizer.model, the file most directories have (and callers look for).
      return absl::NotFoundError(absl::StrCat(
          model, ": missing tokenizer (expected tokenizer.model or tokenizer.json in ", path, ")"));
    } else {
      return absl::NotFoundError(absl::StrCat(path, ": missing tokenizer (no such file)"));
    }
  }
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->path_ = file;
  if (IsGgufPath(file)) {
    auto gguf = GgufFile::Open(file);
    if (!gguf.ok()) return gguf.status();
    auto vocab = BpeVocabFromGguf(**gguf);
    if (!vocab.ok()) return vocab.status();
    t->chat_template_ = vocab->chat_template;
    auto bpe = BpeTokenizer::Create(*std::move(vocab), file);
    if (!bpe.ok()) return bpe.status();
    t->bpe_ = *std::move(bpe);
    return t;
  }
  if (absl::EndsWith(file, ".json")) {
    auto bpe = BpeTokenizer::FromTokenizerJson(file);
    if (!bpe.ok()) return bpe.status();
    t->bpe_ = *std::move(bpe);
    t->chat_template_ = t->bpe_->vocab().chat_template;
    return t;
  }
  t->sp_ = std::make_unique<SentencePieceBackend>();
  std::string error;
  if (!t->sp_->Load(file, &error)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": not a valid sentencepiece model: ", error));
  }
  auto chat_template = ChatTemplateBeside(file);
  if (!chat_template.ok()) return chat_template.status();
  t->chat_template_ = *std::move(chat_template);
  return t;
}

std::vector<int> Tokenizer::Encode(absl::string_view text, bool add_bos) const {
  if (bpe_ != nullptr) return bpe_->Encode(text, /*add_special=*/add_bos);
  std::vector<int> ids;
  if (add_bos) ids.push_back(bos_id());
  const std::vector<int> pieces = sp_->Encode(std::string_view(text.data(), text.size()));
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int> ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (int id : ids) {
    if (id >= 0 && id < vocab_size()) v.push_back(id);  // out-of-range ids are dropped, not UB
  }
  return bpe_ != nullptr ? bpe_->Decode(v) : sp_->Decode(v);
}

int Tokenizer::TokenId(absl::string_view token) const {
  if (bpe_ != nullptr) return bpe_->TokenId(token);
  return sp_->PieceToId(std::string_view(token.data(), token.size()));
}

std::string Tokenizer::IdToPiece(int id) const {
  if (id < 0 || id >= vocab_size()) return "<invalid>";
  return bpe_ != nullptr ? bpe_->vocab().tokens[id] : sp_->IdToPiece(id);
}
int Tokenizer::vocab_size() const {
  return bpe_ != nullptr ? bpe_->vocab_size() : sp_->vocab_size();
}
int Tokenizer::bos_id() const { return bpe_ != nullptr ? bpe_->vocab().bos_id : sp_->bos_id(); }
int Tokenizer::eos_id() const { return bpe_ != nullptr ? bpe_->vocab().eos_id : sp_->eos_id(); }

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, absl::Span<const int> context)
    : tok_(tok), ids_(context.begin(), context.end()) {
  // Keep a few context ids so the first new piece's leading space decodes as in the full text
  // (sentencepiece strips the dummy-prefix space of a decode's first piece; BPE has none).
  read_offset_ = ids_.size();
  prefix_offset_ = ids_.size() > 4 ? ids_.size() - 4 : 0;
}

std::string IncrementalDetokenizer::Push(int id) {
  ids_.push_back(id);
  absl::Span<const int> all(ids_);
  const std::string prefix =
      tok_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_));
  const std::string full = tok_.Decode(all.subspan(prefix_offset_));
  if (full.size() <= prefix.size()) return "";
  // sentencepiece: an incomplete UTF-8 sequence (1 to 3 byte pieces so far) decodes to trailing
  // U+FFFDs: wait for the rest of the character. Four or more are invalid bytes, shown as they are.
  if (!tok_.is_byte_level_bpe()) {
    constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";
    int trailing = 0;
    for (absl::string_view f = full; absl::EndsWith(f, kReplacement);
         f.remove_suffix(kReplacement.size())) {
      ++trailing;
    }
    if (trailing >= 1 && trailing <= 3) return "";
  }
  if (full.compare(0, prefix.size(), prefix) != 0) return "";
  // Byte-level BPE decodes to raw bytes: emit only whole characters, hold back an incomplete tail.
  const absl::string_view delta = absl::string_view(full).substr(prefix.size());
  const size_t complete = CompleteUtf8Prefix(delta);
  if (complete <= emitted_) return "";
  std::string out(delta.substr(emitted_, complete - emitted_));
  emitted_ = complete;
  if (complete == delta.size()) {
    prefix_offset_ = read_offset_;
    read_offset_ = ids_.size();
    emitted_ = 0;
  }
  return out;
}

}  // namespace pmpd::models
