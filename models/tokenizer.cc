#include "models/tokenizer.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/file_util.h"

namespace pmpd::models {

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::string file = path;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = JoinPath(path, "tokenizer.model");
  if (!FileExists(file)) {
    return absl::NotFoundError(absl::StrCat(file, ": missing tokenizer (expected a sentencepiece tokenizer.model)"));
  }
  auto t = std::unique_ptr<Tokenizer>(new Tokenizer());
  t->path_ = file;
  std::string error;
  if (!t->sp_.Load(file, &error)) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not a valid sentencepiece model: ", error));
  }
  return t;
}

Tokenizer::~Tokenizer() = default;

std::vector<int> Tokenizer::Encode(absl::string_view text, bool add_bos) const {
  std::vector<int> ids;
  if (add_bos) ids.push_back(bos_id());
  const std::vector<int> pieces = sp_.Encode(std::string_view(text.data(), text.size()));
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::Decode(absl::Span<const int> ids) const {
  std::vector<int> v;
  v.reserve(ids.size());
  for (int id : ids) {
    if (id >= 0 && id < vocab_size()) v.push_back(id);  // out-of-range ids are dropped, not UB
  }
  return sp_.Decode(v);
}

std::string Tokenizer::IdToPiece(int id) const {
  if (id < 0 || id >= vocab_size()) return "<invalid>";
  return sp_.IdToPiece(id);
}
int Tokenizer::vocab_size() const { return sp_.vocab_size(); }
int Tokenizer::bos_id() const { return sp_.bos_id(); }
int Tokenizer::eos_id() const { return sp_.eos_id(); }

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tok, absl::Span<const int> context)
    : tok_(tok), ids_(context.begin(), context.end()) {
  // Keep a few context ids so the first new piece's leading space decodes as in the full text.
  read_offset_ = ids_.size();
  prefix_offset_ = ids_.size() > 4 ? ids_.size() - 4 : 0;
}

std::string IncrementalDetokenizer::Push(int id) {
  ids_.push_back(id);
  absl::Span<const int> all(ids_);
  const std::string prefix = tok_.Decode(all.subspan(prefix_offset_, read_offset_ - prefix_offset_));
  const std::string full = tok_.Decode(all.subspan(prefix_offset_));
  if (full.size() <= prefix.size()) return "";
  // An incomplete UTF-8 sequence (1 to 3 byte pieces so far) decodes to trailing U+FFFDs: wait for
  // the rest of the character. Four or more are invalid bytes and are shown as they are.
  constexpr absl::string_view kReplacement = "\xEF\xBF\xBD";
  int trailing = 0;
  for (absl::string_view f = full; absl::EndsWith(f, kReplacement); f.remove_suffix(kReplacement.size())) ++trailing;
  if (trailing >= 1 && trailing <= 3) return "";
  if (full.compare(0, prefix.size(), prefix) != 0) return "";
  std::string delta = full.substr(prefix.size());
  prefix_offset_ = read_offset_;
  read_offset_ = ids_.size();
  return delta;
}

}  // namespace pmpd::models
