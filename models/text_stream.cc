#include "models/text_stream.h"

#include <glob.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/file_util.h"
#include "models/text_data.h"

namespace pmpd::models {
namespace {

bool IsShardName(const std::string& name) {
  for (const char* ext : {".json", ".jsonl", ".json.gz", ".jsonl.gz"}) {
    if (absl::EndsWith(name, ext)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TextStream>> TextStream::Open(const std::string& spec) {
  std::unique_ptr<TextStream> s(new TextStream());
  struct stat st;
  if (::stat(spec.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    auto names = ListDirectory(spec);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      if (IsShardName(name)) s->files_.push_back(JoinPath(spec, name));
    }
    if (s->files_.empty()) {
      return absl::NotFoundError(
          absl::StrCat(spec, ": no .json, .jsonl, .json.gz or .jsonl.gz file in the directory"));
    }
  } else if (::stat(spec.c_str(), &st) == 0) {
    if (absl::Status r = CheckRegularFile(spec); !r.ok()) return r;
    s->files_.push_back(spec);
  } else {
    glob_t g;
    const int rc = ::glob(spec.c_str(), 0, nullptr, &g);
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) s->files_.push_back(g.gl_pathv[i]);
    }
    ::globfree(&g);
    if (s->files_.empty())
      return absl::NotFoundError(absl::StrCat(spec, ": no such file, directory or glob match"));
  }
  std::sort(s->files_.begin(), s->files_.end());
  return s;
}

TextStream::~TextStream() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
}

std::string TextStream::location() const {
  if (file_index_ == 0) return "(not started)";
  return absl::StrCat(files_[file_index_ - 1], ":", line_);
}

bool TextStream::OpenNext() {
  if (gz_ != nullptr) gzclose(static_cast<gzFile>(gz_));
  gz_ = nullptr;
  if (file_index_ >= files_.size()) return false;
  // zlib reads plain files transparently, so one path serves .json and .json.gz.
  gz_ = gzopen(files_[file_index_].c_str(), "rb");
  plain_ = !IsShardName(files_[file_index_]);
  plain_buffer_.clear();
  ++file_index_;
  line_ = 0;
  return true;
}

absl::StatusOr<bool> TextStream::NextLine(std::string* line) {
  gzFile f = static_cast<gzFile>(gz_);
  char buf[1 << 16];
  size_t scanned = 0;
  while (true) {
    if (const size_t nl = plain_buffer_.find('\n', scanned); nl != std::string::npos) {
      line->assign(plain_buffer_, 0, nl + 1);
      plain_buffer_.erase(0, nl + 1);
      return true;
    }
    scanned = plain_buffer_.size();
    const int n = gzread(f, buf, sizeof(buf));
    int err = Z_OK;
    const char* msg = gzerror(f, &err);
    if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
      return absl::DataLossError(absl::StrCat(files_[file_index_ - 1],
                                              ": corrupt gzip data after line ", line_, ": ", msg));
    }
    if (n > 0) {
      plain_buffer_.append(buf, n);
      continue;
    }
    if (plain_buffer_.empty()) return false;
    line->swap(plain_buffer_);  // a last line without '\n'
    plain_buffer_.clear();
    return true;
  }
}

absl::StatusOr<bool> TextStream::Next(std::string* text) {
  std::string line;
  while (true) {
    if (gz_ == nullptr) {
      if (!OpenNext()) return false;
      if (gz_ == nullptr)
        return absl::NotFoundError(absl::StrCat(files_[file_index_ - 1], ": cannot open"));
      gzbuffer(static_cast<gzFile>(gz_), 1 << 17);
    }
    if (plain_) {
      auto got = NextPlain(text);
      if (!got.ok() || *got) return got;
      continue;  // that file is done
    }
    // Whole lines through gzread: gzgets stops at a NUL byte, which glued the rest of a line to
    // the next one (a NUL in one document swallowed the next).
    auto got = NextLine(&line);
    if (!got.ok()) return got.status();
    if (!*got) {  // end of this file
      gzFile f = static_cast<gzFile>(gz_);
      gzclose(f);
      gz_ = nullptr;
      if (file_index_ >= files_.size()) return false;
      continue;
    }
    ++line_;
    switch (ParseJsonTextLine(line, text)) {
      case TextLine::kText:
        ++documents_;
        return true;
      case TextLine::kBlank:
        break;
      case TextLine::kEmpty:
        ++empty_;
        break;
      case TextLine::kMalformed:
        ++malformed_;
        break;
    }
  }
}

// Plain text: documents between "<|endoftext|>" markers, read in 64 KiB pieces.
absl::StatusOr<bool> TextStream::NextPlain(std::string* text) {
  static constexpr absl::string_view kSep = "<|endoftext|>";
  gzFile f = static_cast<gzFile>(gz_);
  char buf[1 << 16];
  while (true) {
    size_t at = plain_buffer_.find(kSep.data(), 0, kSep.size());
    bool eof = false;
    if (at == std::string::npos) {
      const int n = gzread(f, buf, sizeof(buf));
      int err = Z_OK;
      const char* msg = gzerror(f, &err);
      if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
        return absl::DataLossError(absl::StrCat(
            files_[file_index_ - 1], ": corrupt gzip data after document ", line_, ": ", msg));
      }
      if (n > 0) {
        plain_buffer_.append(buf, n);
        continue;
      }
      eof = true;
      at = plain_buffer_.size();
    }
    const std::string doc(
        absl::StripAsciiWhitespace(absl::string_view(plain_buffer_).substr(0, at)));
    plain_buffer_.erase(0, eof ? at : at + kSep.size());
    if (eof && plain_buffer_.empty() && doc.empty()) {
      gzclose(f);
      gz_ = nullptr;
      return false;
    }
    ++line_;
    if (doc.empty()) {
      ++empty_;
      if (eof) {
        gzclose(f);
        gz_ = nullptr;
        return false;
      }
      continue;
    }
    *text = doc;
    ++documents_;
    return true;
  }
}

}  // namespace pmpd::models
