// Byte-level BPE as Hugging Face `tokenizers` (0.2x) runs it. The steps and where they mirror HF:
//   1. invalid UTF-8 -> U+FFFD per maximal ill-formed subpart (what Python's
//      bytes.decode("utf-8", "replace") gives, and what llama.cpp does): HF only ever sees valid
//      text, so this is the text HF would have been handed;
//   2. added tokens: special ones first, then the others in the gaps (HF: non-normalized tokens,
//      then normalized ones; added tokens default to normalized = !special), each leftmost-longest;
//      the NFC normalizer (Qwen2's tokenizer.json), when set, applies to the gaps between special
//      tokens before the others are matched, as HF's AddedVocabulary::extract_and_normalize does;
//   3. pre-tokenizer: each regex splits every piece of the previous one, "isolated" (matches and
//      the gaps between them are pieces; empty pieces vanish), matching inside the piece only, so a
//      lookahead such as \s+(?!\S) sees the piece's end as the subject's end;
//   4. per piece, bytes -> GPT-2 byte alphabet symbols, then merges by (rank, position) with a
//      heap, exactly HF's Word::merge_all (lowest rank first, leftmost on ties).
// Thread safety: compiled regexes and tables are read-only after Create; match data is made per
// Encode call; the piece cache sits behind a shared mutex.
#include "models/bpe_tokenizer.h"

#include "base/atomic_file.h"
#include "base/json_integer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#ifdef PMPD_HAVE_ICU
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#endif

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <shared_mutex>

#include "absl/strings/str_cat.h"
#include "models/file_util.h"

namespace pmpd::models {
namespace {

using nlohmann::json;

constexpr char kGpt2Regex[] =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr char kLlama3Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kQwen2Regex[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr char kDigitRegex[] = R"(\p{N})";

// ---------------------------------------------------------------------------------------------
// UTF-8

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence at s[i], or 0 and *consumed = the bytes of its maximal
// ill-formed subpart (at least 1) when there is none (Unicode 15, table 3-7).
int Utf8SequenceAt(absl::string_view s, size_t i, int* consumed) {
  const auto b = static_cast<unsigned char>(s[i]);
  int need;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) {
    need = 2;
  } else if (b >= 0xE0 && b <= 0xEF) {
    need = 3;
    if (b == 0xE0) lo = 0xA0;
    if (b == 0xED) hi = 0x9F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    need = 4;
    if (b == 0xF0) lo = 0x90;
    if (b == 0xF4) hi = 0x8F;
  } else {
    *consumed = 1;
    return 0;
  }
  for (int k = 1; k < need; ++k) {
    if (i + k >= s.size()) {
      *consumed = k;
      return 0;
    }
    const auto c = static_cast<unsigned char>(s[i + k]);
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) {
      *consumed = k;
      return 0;
    }
  }
  return need;
}

bool IsValidUtf8(absl::string_view s) {
  int consumed;
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    const int n = Utf8SequenceAt(s, i, &consumed);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// `s` with each maximal ill-formed subpart replaced by U+FFFD.
std::string ReplaceInvalidUtf8(absl::string_view s) {
  std::string out;
  out.reserve(s.size() + 16);
  int consumed;
  for (size_t i = 0; i < s.size();) {
    const int n = Utf8SequenceAt(s, i, &consumed);
    if (n > 0) {
      out.append(s.data() + i, n);
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += consumed;
    }
  }
  return out;
}

// Decodes the code point at s[*i] of valid UTF-8 and advances *i.
uint32_t NextCodePoint(absl::string_view s, size_t* i) {
  const auto b = static_cast<unsigned char>(s[*i]);
  int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  if (*i + n > s.size()) n = static_cast<int>(s.size() - *i);
  uint32_t cp = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (int k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3F);
  *i += n;
  return cp;
}

#ifdef PMPD_HAVE_ICU
// ICU's NFC normalizer, or nullptr when its data is missing.
const icu::Normalizer2* Nfc() {
  UErrorCode err = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(err);
  return U_SUCCESS(err) ? nfc : nullptr;
}
#else
// Built without ICU: no NFC normalizer (tokenizers that need one are refused at load).
const void* Nfc() { return nullptr; }
#endif

// `s` (valid UTF-8) in Unicode normalization form C. Cost: one quick check pass when already NFC.
std::string NormalizeNfc(absl::string_view s) {
#ifndef PMPD_HAVE_ICU
  return std::string(s);
#else
  const icu::Normalizer2* nfc = Nfc();
  const icu::StringPiece piece(s.data(), static_cast<int32_t>(s.size()));
  UErrorCode err = U_ZERO_ERROR;
  if (nfc == nullptr || (nfc->isNormalizedUTF8(piece, err) && U_SUCCESS(err)))
    return std::string(s);
  err = U_ZERO_ERROR;
  std::string out;
  icu::StringByteSink<std::string> sink(&out, static_cast<int32_t>(s.size()));
  nfc->normalizeUTF8(0, piece, sink, nullptr, err);
  return U_SUCCESS(err) ? out : std::string(s);
#endif
}

// ---------------------------------------------------------------------------------------------
// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the other 68 bytes for
// U+0100.. in byte order, so every byte is one visible character ("Ġ" = space, "Ċ" = newline).

struct ByteAlphabet {
  std::array<std::string, 256> utf8;  // byte -> its character in UTF-8
  std::array<int, 324> byte_of;       // code point -> byte, -1 where none
};

const ByteAlphabet& Alphabet() {
  static const ByteAlphabet* a = [] {
    auto* t = new ByteAlphabet();
    t->byte_of.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const uint32_t cp = printable ? b : 256 + extra++;
      AppendUtf8(cp, &t->utf8[b]);
      t->byte_of[cp] = b;
    }
    return t;
  }();
  return *a;
}

std::string ToByteAlphabet(absl::string_view bytes) {
  const ByteAlphabet& a = Alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.utf8[static_cast<unsigned char>(c)];
  return out;
}

// The bytes a token spelled in the byte alphabet stands for; as HF's ByteLevel decoder, a token
// with a character outside the alphabet stands for its own UTF-8 text.
void AppendTokenBytes(absl::string_view token, std::string* out) {
  const ByteAlphabet& a = Alphabet();
  const size_t start = out->size();
  for (size_t i = 0; i < token.size();) {
    const uint32_t cp = NextCodePoint(token, &i);
    if (cp >= a.byte_of.size() || a.byte_of[cp] < 0) {
      out->resize(start);
      out->append(token.data(), token.size());
      return;
    }
    out->push_back(static_cast<char>(a.byte_of[cp]));
  }
}

// ---------------------------------------------------------------------------------------------
// PCRE2

struct Range {
  size_t begin, end;
};

class Regex {
 public:
  static absl::StatusOr<std::unique_ptr<Regex>> Compile(const std::string& pattern,
                                                        absl::string_view source) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return absl::InvalidArgumentError(absl::StrCat(source, ": pre-tokenizer regex /", pattern,
                                                     "/: ", reinterpret_cast<const char*>(message),
                                                     " at offset ", offset));
    }
    auto r = std::unique_ptr<Regex>(new Regex());
    r->code_ = code;
    // JIT when the library has it; pcre2_match falls back to the interpreter by itself otherwise.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    return r;
  }
  ~Regex() { pcre2_code_free(code_); }

  // Match data for one thread's use of this regex.
  pcre2_match_data* NewMatchData() const {
    return pcre2_match_data_create_from_pattern(code_, nullptr);
  }

  // Appends the pieces of text[piece] cut by this regex, "isolated", to *out. The subject is the
  // piece alone. `text` is valid UTF-8.
  void Split(absl::string_view text, Range piece, pcre2_match_data* md,
             std::vector<Range>* out) const {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data() + piece.begin);
    const size_t len = piece.end - piece.begin;
    size_t prev = 0, pos = 0;
    bool last_was_match = false;
    size_t last_match_end = 0;
    while (pos <= len) {
      int rc = pcre2_match(code_, subject, len, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
        rc = pcre2_match(code_, subject, len, pos, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, nullptr);
      }
      if (rc < 0) break;  // no match (or a resource limit: the rest stays one piece)
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      const size_t start = ov[0], end = ov[1];
      if (start == end) {
        // An empty match right after a match is skipped (Rust onig/regex find_iter semantics).
        if (!(last_was_match && last_match_end == end) && start != prev) {
          out->push_back({piece.begin + prev, piece.begin + start});
          prev = start;
        }
        if (start >= len) break;
        size_t next = start;
        NextCodePoint(absl::string_view(text.data() + piece.begin, len), &next);
        pos = next;
        last_was_match = false;
        continue;
      }
      if (start != prev) out->push_back({piece.begin + prev, piece.begin + start});
      out->push_back({piece.begin + start, piece.begin + end});
      prev = pos = end;
      last_was_match = true;
      last_match_end = end;
    }
    if (prev != len) out->push_back({piece.begin + prev, piece.end});
  }

 private:
  Regex() = default;
  pcre2_code* code_ = nullptr;  // immutable after Compile: shared by threads, match data is not
};

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

// ---------------------------------------------------------------------------------------------
// Added tokens, leftmost-longest.

class AddedTokenMatcher {
 public:
  void Add(const std::string& content, int id) {
    by_first_[static_cast<unsigned char>(content[0])].push_back({content, id});
  }
  void Finish() {
    for (auto& v : by_first_) {
      std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        return a.first.size() > b.first.size();
      });
      empty_ = empty_ && v.empty();
    }
  }
  bool empty() const { return empty_; }

  // Calls on_text(range) for the gaps and on_token(id) for each added token, in order.
  template <typename OnText, typename OnToken>
  void Split(absl::string_view text, Range r, OnText on_text, OnToken on_token) const {
    size_t gap = r.begin;
    for (size_t i = r.begin; i < r.end;) {
      const auto& candidates = by_first_[static_cast<unsigned char>(text[i])];
      const std::pair<std::string, int>* hit = nullptr;
      for (const auto& c : candidates) {  // longest first
        if (c.first.size() <= r.end - i &&
            std::memcmp(text.data() + i, c.first.data(), c.first.size()) == 0) {
          hit = &c;
          break;
        }
      }
      if (hit == nullptr) {
        ++i;
        continue;
      }
      if (gap < i) on_text(Range{gap, i});
      on_token(hit->second);
      i += hit->first.size();
      gap = i;
    }
    if (gap < r.end) on_text(Range{gap, r.end});
  }

 private:
  std::array<std::vector<std::pair<std::string, int>>, 256> by_first_;
  bool empty_ = true;
};

uint64_t PairKey(int a, int b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json helpers

absl::Status Unsupported(absl::string_view path, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": unsupported ", what));
}

std::string JsonTypeName(const json& j) {
  if (j.is_object() && j.contains("type") && j["type"].is_string())
    return j["type"].get<std::string>();
  return j.dump();
}

// Escapes `s` for use as a literal inside a PCRE2 pattern.
std::string RegexQuote(absl::string_view s) {
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

bool BoolField(const json& j, const char* key, bool fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  return j[key].get<bool>();
}

// Appends the regexes of one pre-tokenizer (ByteLevel must come last; *byte_level is set by it).
absl::Status AddPreTokenizer(const json& pt, const std::string& path,
                             std::vector<std::string>* regexes, bool* byte_level) {
  const std::string type = pt.at("type").get<std::string>();
  if (type == "Sequence") {
    for (const json& p : pt.at("pretokenizers")) {
      if (*byte_level) return Unsupported(path, "pre_tokenizer: a step after ByteLevel");
      absl::Status st = AddPreTokenizer(p, path, regexes, byte_level);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  if (*byte_level) return Unsupported(path, "pre_tokenizer: a step after ByteLevel");
  if (type == "ByteLevel") {
    if (BoolField(pt, "add_prefix_space", false))
      return Unsupported(path, "pre_tokenizer ByteLevel add_prefix_space=true");
    if (BoolField(pt, "use_regex", true)) regexes->push_back(kGpt2Regex);
    *byte_level = true;
    return absl::OkStatus();
  }
  if (type == "Split") {
    const json& pattern = pt.at("pattern");
    if (pattern.contains("Regex")) {
      regexes->push_back(pattern["Regex"].get<std::string>());
    } else if (pattern.contains("String")) {
      regexes->push_back(RegexQuote(pattern["String"].get<std::string>()));
    } else {
      return Unsupported(path, absl::StrCat("pre_tokenizer Split pattern ", pattern.dump()));
    }
    const std::string behavior = pt.at("behavior").get<std::string>();
    if (behavior != "Isolated")
      return Unsupported(
          path, absl::StrCat("pre_tokenizer Split behavior ", behavior, " (only Isolated)"));
    if (BoolField(pt, "invert", false)) return Unsupported(path, "pre_tokenizer Split invert=true");
    return absl::OkStatus();
  }
  if (type == "Digits") {
    regexes->push_back(BoolField(pt, "individual_digits", false) ? kDigitRegex : R"(\p{N}+)");
    return absl::OkStatus();
  }
  return Unsupported(path, absl::StrCat("pre_tokenizer type ", type,
                                        " (supported: Sequence, Split, Digits, ByteLevel)"));
}

// Reads the BOS of a post_processor (TemplateProcessing "single" = [SpecialToken, A]).
absl::Status ReadPostProcessor(const json& pp, const std::string& path, std::string* bos_token) {
  if (pp.is_null()) return absl::OkStatus();
  const std::string type = pp.at("type").get<std::string>();
  if (type == "ByteLevel") return absl::OkStatus();
  if (type == "Sequence") {
    for (const json& p : pp.at("processors")) {
      absl::Status st = ReadPostProcessor(p, path, bos_token);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return Unsupported(path, absl::StrCat("post_processor type ", type,
                                          " (supported: TemplateProcessing, ByteLevel)"));
  }
  const json& single = pp.at("single");
  bool seen_text = false;
  for (const json& piece : single) {
    if (piece.contains("Sequence")) {
      seen_text = true;
    } else if (piece.contains("SpecialToken")) {
      const std::string name = piece["SpecialToken"].at("id").get<std::string>();
      if (seen_text)
        return Unsupported(path,
                           absl::StrCat("post_processor: special token ", name, " after the text"));
      if (!bos_token->empty())
        return Unsupported(path, "post_processor: more than one token before the text");
      *bos_token = name;
    } else {
      return Unsupported(path, absl::StrCat("post_processor template piece ", piece.dump()));
    }
  }
  return absl::OkStatus();
}

std::string TokenName(const json& j) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content")) return j["content"].get<std::string>();
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> PreTokenizerRegexes(absl::string_view pre_name) {
  if (pre_name == "gpt2" || pre_name == "default") return std::vector<std::string>{kGpt2Regex};
  if (pre_name == "smollm") return std::vector<std::string>{kDigitRegex, kGpt2Regex};
  if (pre_name == "llama3" || pre_name == "llama-bpe" || pre_name == "llama-v3") {
    return std::vector<std::string>{kLlama3Regex};
  }
  if (pre_name == "qwen2") return std::vector<std::string>{kQwen2Regex};
  return absl::InvalidArgumentError(
      absl::StrCat("unknown pre-tokenizer \"", pre_name,
                   "\" (known: gpt2, default, smollm, llama3, llama-bpe, llama-v3, qwen2)"));
}

bool PreTokenizerIgnoresMerges(absl::string_view pre_name) {
  return pre_name == "llama3" || pre_name == "llama-bpe" || pre_name == "llama-v3";
}

absl::StatusOr<HfTokenizerConfig> ReadTokenizerConfig(const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  json j;
  try {
    j = json::parse(*text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!j.is_object())
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON object"));
  HfTokenizerConfig c;
  if (j.contains("chat_template") && !j["chat_template"].is_null()) {
    const json& t = j["chat_template"];
    if (t.is_string()) {
      c.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const json& e : t) {
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") &&
            e["template"].is_string()) {
          c.chat_template = e["template"].get<std::string>();
        }
      }
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": chat_template: expected a string or a list of {name, template}"));
    }
  }
  if (j.contains("add_bos_token") && !j["add_bos_token"].is_null()) {
    if (!j["add_bos_token"].is_boolean()) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": add_bos_token: expected true or false"));
    }
    c.add_bos_token = j["add_bos_token"].get<bool>() ? 1 : 0;
  }
  for (auto [key, out] : {std::pair<const char*, std::string*>{"bos_token", &c.bos_token},
                          {"eos_token", &c.eos_token}}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const json& v = j[key];
    if (!(v.is_string() || (v.is_object() && v.contains("content") && v["content"].is_string()))) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": ", key, ": expected a string or {\"content\": string}"));
    }
    *out = TokenName(v);
  }
  return c;
}

struct BpeTokenizer::Impl {
  BpeVocab vocab;
  std::string source;
  std::unordered_map<std::string, int> token_to_id;
  std::unordered_map<uint64_t, std::pair<int, int>>
      merges;                     // (left id, right id) -> (rank, merged id)
  std::array<int, 256> byte_ids;  // byte -> id of its alphabet symbol (or unk)
  std::vector<std::unique_ptr<Regex>> regexes;
  std::vector<uint8_t> added_kind;  // per id: 0 ordinary, 1 added, 2 added special
  AddedTokenMatcher special_matcher, other_matcher;

  // Piece (raw bytes) -> ids. Bounded: cleared when it grows past kCacheEntries.
  static constexpr size_t kCacheEntries = 1 << 16;
  static constexpr size_t kCachePieceBytes = 64;
  mutable std::shared_mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int>> cache;

  void EncodePiece(absl::string_view bytes, std::vector<int>* out) const;
  void MergePiece(absl::string_view bytes, std::vector<int>* out) const;
  // The pre-tokenizer's pieces of text[r] (valid UTF-8); mds: one lazily made match data per regex.
  std::vector<Range> PreTokenize(absl::string_view text, Range r,
                                 std::vector<MatchData>* mds) const;
  void EncodeOrdinary(absl::string_view text, Range r, std::vector<MatchData>* mds,
                      std::vector<int>* out) const;
};

void BpeTokenizer::Impl::MergePiece(absl::string_view bytes, std::vector<int>* out) const {
  struct Symbol {
    int id, prev, next;
    bool alive;
  };
  const int n = static_cast<int>(bytes.size());
  std::vector<Symbol> sym(n);
  for (int i = 0; i < n; ++i)
    sym[i] = {byte_ids[static_cast<unsigned char>(bytes[i])], i - 1, i + 1 < n ? i + 1 : -1, true};
  struct Merge {
    int rank, pos, new_id;
    bool operator>(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Merge, std::vector<Merge>, std::greater<Merge>> queue;
  auto push = [&](int pos) {
    const int next = sym[pos].next;
    if (next < 0) return;
    auto it = merges.find(PairKey(sym[pos].id, sym[next].id));
    if (it != merges.end()) queue.push({it->second.first, pos, it->second.second});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Merge top = queue.top();
    queue.pop();
    Symbol& left = sym[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol& right = sym[left.next];
    auto it = merges.find(PairKey(left.id, right.id));
    if (it == merges.end() || it->second.second != top.new_id) continue;  // stale entry
    left.id = top.new_id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) sym[right.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    push(top.pos);
  }
  for (int i = 0; i < n; ++i) {
    if (sym[i].alive) out->push_back(sym[i].id);
  }
}

void BpeTokenizer::Impl::EncodePiece(absl::string_view bytes, std::vector<int>* out) const {
  if (vocab.ignore_merges) {
    auto it = token_to_id.find(ToByteAlphabet(bytes));
    if (it != token_to_id.end()) {
      out->push_back(it->second);
      return;
    }
  }
  if (bytes.size() > kCachePieceBytes) {
    MergePiece(bytes, out);
    return;
  }
  const std::string key(bytes);
  {
    std::shared_lock lock(cache_mu);
    auto it = cache.find(key);
    if (it != cache.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int> ids;
  MergePiece(bytes, &ids);
  out->insert(out->end(), ids.begin(), ids.end());
  std::unique_lock lock(cache_mu);
  if (cache.size() >= kCacheEntries) cache.clear();
  cache.emplace(key, std::move(ids));
}

std::vector<Range> BpeTokenizer::Impl::PreTokenize(absl::string_view text, Range r,
                                                   std::vector<MatchData>* mds) const {
  std::vector<Range> pieces = {r}, next;
  for (size_t k = 0; k < regexes.size(); ++k) {
    if ((*mds)[k] == nullptr) (*mds)[k].reset(regexes[k]->NewMatchData());
    next.clear();
    for (const Range& p : pieces) regexes[k]->Split(text, p, (*mds)[k].get(), &next);
    pieces.swap(next);
  }
  return pieces;
}

void BpeTokenizer::Impl::EncodeOrdinary(absl::string_view text, Range r,
                                        std::vector<MatchData>* mds, std::vector<int>* out) const {
  for (const Range& p : PreTokenize(text, r, mds)) {
    if (p.end > p.begin) EncodePiece(text.substr(p.begin, p.end - p.begin), out);
  }
}

BpeTokenizer::BpeTokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BpeTokenizer::~BpeTokenizer() = default;

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(BpeVocab vocab,
                                                                   absl::string_view source) {
  auto impl = std::make_unique<Impl>();
  impl->source = std::string(source);
  const int n = static_cast<int>(vocab.tokens.size());
  if (n == 0)
    return absl::InvalidArgumentError(absl::StrCat(source, ": empty tokenizer vocabulary"));
  impl->token_to_id.reserve(n);
  for (int id = 0; id < n; ++id) {
    auto [it, inserted] = impl->token_to_id.emplace(vocab.tokens[id], id);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(source, ": duplicate token \"",
                                                     vocab.tokens[id], "\" (ids ", it->second,
                                                     " and ", id, ")"));
    }
  }
  for (auto [name, id] : {std::pair<const char*, int>{"bos", vocab.bos_id},
                          {"eos", vocab.eos_id},
                          {"unk", vocab.unk_id},
                          {"pad", vocab.pad_id}}) {
    if (id < -1 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", name, " id ", id, " outside the vocabulary of ", n));
    }
  }
  if (vocab.add_bos && vocab.bos_id < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": add_bos is set but there is no BOS token"));
  }
  impl->merges.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const auto& [a, b] = vocab.merges[rank];
    auto ia = impl->token_to_id.find(a), ib = impl->token_to_id.find(b),
         im = impl->token_to_id.find(a + b);
    if (ia == impl->token_to_id.end() || ib == impl->token_to_id.end() ||
        im == impl->token_to_id.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": merge ", rank, " \"", a, " ", b,
                       "\" names a token that is not in the vocabulary"));
    }
    // Later duplicates win, as in HF's merge map.
    impl->merges[PairKey(ia->second, ib->second)] = {static_cast<int>(rank), im->second};
  }
  const ByteAlphabet& alphabet = Alphabet();
  for (int b = 0; b < 256; ++b) {
    auto it = impl->token_to_id.find(alphabet.utf8[b]);
    if (it != impl->token_to_id.end()) {
      impl->byte_ids[b] = it->second;
    } else if (vocab.unk_id >= 0) {
      impl->byte_ids[b] = vocab.unk_id;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": byte-level vocabulary lacks the symbol of byte ", b, " (\"",
                       alphabet.utf8[b], "\") and has no unknown token"));
    }
  }
  if (vocab.added_special.size() != vocab.added_ids.size()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": ", vocab.added_ids.size(),
                                                   " added tokens but ", vocab.added_special.size(),
                                                   " special flags"));
  }
  impl->added_kind.assign(n, 0);
  for (size_t k = 0; k < vocab.added_ids.size(); ++k) {
    const int id = vocab.added_ids[k];
    if (id < 0 || id >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": added token id ", id, " outside the vocabulary of ", n));
    }
    if (vocab.tokens[id].empty())
      return absl::InvalidArgumentError(absl::StrCat(source, ": added token ", id, " is empty"));
    if (impl->added_kind[id] != 0) continue;
    impl->added_kind[id] = vocab.added_special[k] ? 2 : 1;
    (vocab.added_special[k] ? impl->special_matcher : impl->other_matcher)
        .Add(vocab.tokens[id], id);
  }
  impl->special_matcher.Finish();
  impl->other_matcher.Finish();
  if (vocab.normalize_nfc && Nfc() == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        source, ": the NFC normalizer is unavailable (ICU data missing, or a build without ICU)"));
  }
  for (const std::string& r : vocab.split_regexes) {
    auto re = Regex::Compile(r, source);
    if (!re.ok()) return re.status();
    impl->regexes.push_back(*std::move(re));
  }
  impl->vocab = std::move(vocab);
  return std::unique_ptr<BpeTokenizer>(new BpeTokenizer(std::move(impl)));
}

std::vector<int> BpeTokenizer::Encode(absl::string_view input, bool add_special) const {
  const Impl& m = *impl_;
  std::vector<int> ids;
  ids.reserve(input.size() / 3 + 2);
  if (add_special && m.vocab.add_bos) ids.push_back(m.vocab.bos_id);
  std::string replaced;
  absl::string_view text = input;
  if (!IsValidUtf8(input)) {
    replaced = ReplaceInvalidUtf8(input);
    text = replaced;
  }
  std::vector<MatchData> mds(m.regexes.size());
  std::string normalized;
  auto push_id = [&ids](int id) { ids.push_back(id); };
  m.special_matcher.Split(
      text, Range{0, text.size()},
      [&](Range r) {
        absl::string_view gap = text.substr(r.begin, r.end - r.begin);
        if (m.vocab.normalize_nfc) {
          normalized = NormalizeNfc(gap);
          gap = normalized;
        }
        auto ordinary = [&](Range q) { m.EncodeOrdinary(gap, q, &mds, &ids); };
        if (m.other_matcher.empty()) {
          ordinary(Range{0, gap.size()});
        } else {
          m.other_matcher.Split(gap, Range{0, gap.size()}, ordinary, push_id);
        }
      },
      push_id);
  return ids;
}

std::vector<std::string> BpeTokenizer::PreTokenize(absl::string_view input) const {
  std::string replaced = IsValidUtf8(input) ? std::string(input) : ReplaceInvalidUtf8(input);
  if (impl_->vocab.normalize_nfc) replaced = NormalizeNfc(replaced);
  const absl::string_view text = replaced;
  std::vector<MatchData> mds(impl_->regexes.size());
  std::vector<std::string> out;
  for (const Range& p : impl_->PreTokenize(text, Range{0, text.size()}, &mds)) {
    if (p.end > p.begin) out.emplace_back(text.substr(p.begin, p.end - p.begin));
  }
  return out;
}

std::string BpeTokenizer::Decode(const std::vector<int>& ids, bool skip_special) const {
  const Impl& m = *impl_;
  std::string out;
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    const uint8_t kind = m.added_kind[id];
    if (kind == 2 && skip_special) continue;
    if (kind != 0) {
      out += m.vocab.tokens[id];
    } else {
      AppendTokenBytes(m.vocab.tokens[id], &out);
    }
  }
  return out;
}

int BpeTokenizer::vocab_size() const { return static_cast<int>(impl_->vocab.tokens.size()); }
const BpeVocab& BpeTokenizer::vocab() const { return impl_->vocab; }

int BpeTokenizer::TokenId(absl::string_view token) const {
  auto it = impl_->token_to_id.find(std::string(token));
  return it == impl_->token_to_id.end() ? -1 : it->second;
}

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::FromTokenizerJson(
    const std::string& path) {
  auto text = ReadFileToString(path);
  if (!text.ok()) return text.status();
  BpeVocab vocab;
  std::string bos_from_template;
  try {
    const json j = json::parse(*text);
    // Normalizer: none or NFC (alone or as the one step of a Sequence).
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      json norm = j["normalizer"];
      if (JsonTypeName(norm) == "Sequence" && norm.at("normalizers").size() <= 1) {
        norm = norm["normalizers"].empty() ? json() : norm["normalizers"][0];
      }
      if (JsonTypeName(norm) == "NFC") {
        vocab.normalize_nfc = true;
      } else if (!norm.is_null()) {
        return Unsupported(path,
                           absl::StrCat("normalizer ", JsonTypeName(norm), " (only none or NFC)"));
      }
    }
    const json& model = j.at("model");
    const std::string type = model.value("type", "BPE");
    if (type != "BPE") return Unsupported(path, absl::StrCat("model type ", type, " (only BPE)"));
    if (BoolField(model, "byte_fallback", false)) {
      return Unsupported(path,
                         "model: byte_fallback BPE (sentencepiece-style; use its tokenizer.model)");
    }
    if (model.contains("dropout") && !model["dropout"].is_null() &&
        model["dropout"].get<double>() != 0.0) {
      return Unsupported(path, "model: BPE dropout");
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty()) {
        return Unsupported(path, absl::StrCat("model: ", key));
      }
    }
    vocab.ignore_merges = BoolField(model, "ignore_merges", false);
    // Tokens: the model vocabulary, then the added tokens by id.
    std::vector<std::pair<int, std::string>> by_id;
    // Ids read wide and range-checked (get<int>() of 1e300 is undefined behaviour, of 2^32 + 7 is
    // 7; found by fuzz/tokenizer_json_fuzzer).
    auto token_id = [&](const json& id, const std::string& token) -> absl::StatusOr<int> {
      if (auto v = base::JsonInteger(id, 0, (int64_t{1} << 31) - 1)) return static_cast<int>(*v);
      return absl::InvalidArgumentError(absl::StrCat(path, ": token \"", token, "\" has id ",
                                                     id.dump(), ", not an integer in [0, 2^31)"));
    };
    for (const auto& [token, id] : model.at("vocab").items()) {
      auto v = token_id(id, token);
      if (!v.ok()) return v.status();
      by_id.emplace_back(*v, token);
    }
    const json added = j.value("added_tokens", json::array());
    for (const json& a : added) {
      auto v = token_id(a.at("id"), a.at("content").get<std::string>());
      if (!v.ok()) return v.status();
      by_id.emplace_back(*v, a.at("content").get<std::string>());
      for (const char* key : {"single_word", "lstrip", "rstrip"}) {
        if (BoolField(a, key, false)) {
          return Unsupported(path, absl::StrCat("added token \"", a["content"].get<std::string>(),
                                                "\": ", key, "=true"));
        }
      }
    }
    int max_id = -1;
    for (const auto& [id, token] : by_id) max_id = std::max(max_id, id);
    // Every id below the largest must be used (checked below), so the largest is below the count:
    // checked first, so that one id of 2^31 - 1 cannot allocate 2^31 strings.
    if (max_id >= static_cast<int64_t>(by_id.size())) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token id ", max_id, " with only ",
                                                     by_id.size(),
                                                     " tokens: the ids are not 0..n-1"));
    }
    vocab.tokens.assign(max_id + 1, std::string());
    std::vector<bool> seen(max_id + 1, false);
    for (const auto& [id, token] : by_id) {
      vocab.tokens[id] = token;  // an added token replaces the vocabulary's spelling of its id
      seen[id] = true;
    }
    for (int id = 0; id <= max_id; ++id) {
      if (!seen[id])
        return absl::InvalidArgumentError(absl::StrCat(path, ": no token has id ", id));
    }
    for (const json& a : added) {
      vocab.added_ids.push_back(static_cast<int>(*base::JsonInteger(a.at("id"), 0, max_id)));
      vocab.added_special.push_back(BoolField(a, "special", false));
    }
    for (const json& merge : model.at("merges")) {
      if (merge.is_string()) {
        const std::string s = merge.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": merge \"", s, "\": expected \"a b\""));
        }
        vocab.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (merge.is_array() && merge.size() == 2) {
        vocab.merges.emplace_back(merge[0].get<std::string>(), merge[1].get<std::string>());
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": merge ", merge.dump(), ": expected \"a b\" or [a, b]"));
      }
    }
    if (model.contains("unk_token") && !model["unk_token"].is_null()) {
      const std::string unk = model["unk_token"].get<std::string>();
      for (int id = 0; id <= max_id; ++id) {
        if (vocab.tokens[id] == unk) vocab.unk_id = id;
      }
      if (vocab.unk_id < 0)
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": unk_token \"", unk, "\" is not a token"));
    }
    // Pre-tokenizer and decoder: byte-level.
    bool byte_level = false;
    if (j.contains("pre_tokenizer") && !j["pre_tokenizer"].is_null()) {
      absl::Status st =
          AddPreTokenizer(j["pre_tokenizer"], path, &vocab.split_regexes, &byte_level);
      if (!st.ok()) return st;
    }
    if (!byte_level)
      return Unsupported(path, "pre_tokenizer without ByteLevel (not a byte-level BPE)");
    const json decoder = j.value("decoder", json());
    if (JsonTypeName(decoder) != "ByteLevel") {
      return Unsupported(
          path, absl::StrCat("decoder ", decoder.is_null() ? "null" : JsonTypeName(decoder),
                             " (only ByteLevel)"));
    }
    absl::Status st =
        ReadPostProcessor(j.value("post_processor", json()), path, &bos_from_template);
    if (!st.ok()) return st;
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed tokenizer.json: ", e.what()));
  }
  auto id_of = [&vocab](const std::string& token) {
    for (int id = 0; id < static_cast<int>(vocab.tokens.size()); ++id) {
      if (vocab.tokens[id] == token) return id;
    }
    return -1;
  };
  if (!bos_from_template.empty()) {
    vocab.bos_id = id_of(bos_from_template);
    if (vocab.bos_id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": post_processor token \"", bos_from_template, "\" is not a token"));
    }
    vocab.add_bos = true;
  }
  // tokenizer_config.json beside it: chat template, BOS/EOS names, add_bos_token.
  const std::string config_path = JoinPath(base::DirName(path), "tokenizer_config.json");
  if (FileExists(config_path)) {
    auto config = ReadTokenizerConfig(config_path);
    if (!config.ok()) return config.status();
    vocab.chat_template = config->chat_template;
    for (auto [name, out] : {std::pair<const std::string*, int*>{&config->bos_token, &vocab.bos_id},
                             {&config->eos_token, &vocab.eos_id}}) {
      if (name->empty()) continue;
      *out = id_of(*name);
      if (*out < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(config_path, ": token \"", *name, "\" is not in ", path));
      }
    }
    if (config->add_bos_token >= 0) vocab.add_bos = config->add_bos_token == 1 && vocab.bos_id >= 0;
  }
  return Create(std::move(vocab), path);
}

absl::Status BpeTokenizer::WriteHuggingFaceFiles(const std::string& dir) const {
  const BpeVocab& v = impl_->vocab;
  const auto token_or_null = [&v](int id) { return id >= 0 ? json(v.tokens[id]) : json(nullptr); };
  json j;
  std::string tokenizer_json, config_json;
  try {
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    json added = json::array();
    for (size_t k = 0; k < v.added_ids.size(); ++k) {
      const bool special = v.added_special[k];
      added.push_back({{"id", v.added_ids[k]},
                       {"content", v.tokens[v.added_ids[k]]},
                       {"single_word", false},
                       {"lstrip", false},
                       {"rstrip", false},
                       {"normalized", !special},
                       {"special", special}});
    }
    j["added_tokens"] = added;
    j["normalizer"] = v.normalize_nfc ? json{{"type", "NFC"}} : json(nullptr);
    json steps = json::array();
    for (const std::string& r : v.split_regexes) {
      steps.push_back({{"type", "Split"},
                       {"pattern", {{"Regex", r}}},
                       {"behavior", "Isolated"},
                       {"invert", false}});
    }
    steps.push_back({{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", false}});
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
    if (v.add_bos) {
      const std::string bos = v.tokens[v.bos_id];
      const json bos_piece = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
      j["post_processor"] = {
          {"type", "TemplateProcessing"},
          {"single", {bos_piece, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"pair",
           {bos_piece,
            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
            {{"SpecialToken", {{"id", bos}, {"type_id", 1}}}},
            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {v.bos_id}}, {"tokens", {bos}}}}}}};
    } else {
      j["post_processor"] = nullptr;
    }
    j["decoder"] = {{"type", "ByteLevel"},
                    {"add_prefix_space", true},
                    {"trim_offsets", true},
                    {"use_regex", true}};
    json vocab_map = json::object();
    for (size_t id = 0; id < v.tokens.size(); ++id) vocab_map[v.tokens[id]] = id;
    json merges = json::array();
    for (const auto& [a, b] : v.merges) merges.push_back({a, b});
    j["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", token_or_null(v.unk_id)},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", false},
                  {"byte_fallback", false},
                  {"ignore_merges", v.ignore_merges},
                  {"vocab", vocab_map},
                  {"merges", merges}};
    tokenizer_json = j.dump();

    json config = {{"tokenizer_class", "PreTrainedTokenizerFast"},
                   {"add_bos_token", v.add_bos},
                   {"add_eos_token", false},
                   {"bos_token", token_or_null(v.bos_id)},
                   {"eos_token", token_or_null(v.eos_id)},
                   {"unk_token", token_or_null(v.unk_id)},
                   {"pad_token", token_or_null(v.pad_id)},
                   {"clean_up_tokenization_spaces", false}};
    if (!v.chat_template.empty()) config["chat_template"] = v.chat_template;
    config_json = config.dump(2);
  } catch (const json::exception& e) {
    // dump() refuses strings that are not valid UTF-8 (an added token of a GGUF file, say).
    return absl::InvalidArgumentError(
        absl::StrCat(impl_->source, ": cannot write tokenizer.json: ", e.what()));
  }
  absl::Status st = base::WriteFileAtomically(JoinPath(dir, "tokenizer.json"), tokenizer_json);
  if (!st.ok()) return st;
  return base::WriteFileAtomically(JoinPath(dir, "tokenizer_config.json"), config_json + "\n");
}

}  // namespace pmpd::models
