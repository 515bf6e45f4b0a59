#include "models/text_data.h"

#include <zlib.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "models/file_util.h"

namespace pmpd::models {
namespace {

// Whole file, gunzipped when it ends in .gz. Corrupt or truncated gzip is an error.
absl::StatusOr<std::string> ReadMaybeGz(const std::string& path) {
  if (!absl::EndsWith(path, ".gz")) return ReadFileToString(path);
  if (!FileExists(path))
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: no such file"));
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  const bool bad = n < 0 || (err != Z_OK && err != Z_STREAM_END);
  std::string message = bad ? msg : "";
  gzclose(f);
  if (bad) return absl::DataLossError(absl::StrCat(path, ": corrupt gzip data: ", message));
  return out;
}

}  // namespace

TextLine ParseJsonTextLine(absl::string_view line, std::string* text) {
  if (absl::StripAsciiWhitespace(line).empty()) return TextLine::kBlank;
  auto j = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("text") || !j["text"].is_string())
    return TextLine::kMalformed;
  *text = j["text"].get<std::string>();
  return absl::StripAsciiWhitespace(*text).empty() ? TextLine::kEmpty : TextLine::kText;
}

absl::StatusOr<TextDocs> ReadTextDocs(const std::string& path, int max_docs, double begin_fraction,
                                      double end_fraction) {
  if (!(begin_fraction >= 0 && begin_fraction < end_fraction && end_fraction <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": byte range [", begin_fraction, ", ",
                                                   end_fraction,
                                                   ") must satisfy 0 <= begin < end <= 1"));
  }
  auto data = ReadMaybeGz(path);
  if (!data.ok()) return data.status();
  TextDocs docs;
  const bool jsonl = absl::EndsWith(path, ".json") || absl::EndsWith(path, ".jsonl") ||
                     absl::EndsWith(path, ".json.gz") || absl::EndsWith(path, ".jsonl.gz");
  if (begin_fraction > 0 || end_fraction < 1) {
    // Move both cuts forward to the next document boundary so no document is split.
    const absl::string_view sep = jsonl ? "\n" : "<|endoftext|>";
    auto cut = [&](double f) {
      size_t at = static_cast<size_t>(f * data->size());
      if (at == 0 || at >= data->size()) return std::min(at, data->size());
      // Start early enough to find a separator that the cut falls inside.
      const size_t from = at >= sep.size() - 1 ? at - (sep.size() - 1) : 0;
      const size_t next = data->find(sep.data(), from, sep.size());
      return next == std::string::npos ? data->size() : next + sep.size();
    };
    const size_t b = cut(begin_fraction), e = cut(end_fraction);
    *data = data->substr(b, e > b ? e - b : 0);
  }
  auto full = [&] { return max_docs > 0 && static_cast<int>(docs.texts.size()) >= max_docs; };
  if (jsonl) {
    for (absl::string_view line : absl::StrSplit(*data, '\n')) {
      if (full()) break;
      std::string text;
      switch (ParseJsonTextLine(line, &text)) {
        case TextLine::kText:
          docs.texts.push_back(std::move(text));
          break;
        case TextLine::kBlank:
          break;
        case TextLine::kEmpty:
          ++docs.empty_texts;
          break;
        case TextLine::kMalformed:
          ++docs.malformed_lines;
          break;
      }
    }
  } else {
    for (absl::string_view part : absl::StrSplit(*data, "<|endoftext|>")) {
      if (full()) break;
      absl::string_view t = absl::StripAsciiWhitespace(part);
      if (t.empty()) {
        ++docs.empty_texts;
        continue;
      }
      docs.texts.emplace_back(t);
    }
  }
  if (docs.texts.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": no usable document (",
                                                   docs.malformed_lines, " malformed lines, ",
                                                   docs.empty_texts, " empty texts)"));
  }
  return docs;
}

}  // namespace pmpd::models
