// Streams documents without loading whole files: JSON-lines shards as published for allenai/c4
// (`.json`, `.jsonl`, either optionally `.gz`; one object with a string `text` per line), or plain
// text files (any other name, optionally `.gz`) whose documents are separated by "<|endoftext|>"
// (TinyStories). A file, a directory of shards, or a glob pattern. Malformed lines and empty texts
// are skipped and counted.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace pmpd::models {

class TextStream {
 public:
  // `spec`: a file; a directory (its *.json, *.jsonl, *.json.gz, *.jsonl.gz files, sorted by name);
  // or a glob pattern (matches sorted). Errors: nothing matches, or a file cannot be opened.
  static absl::StatusOr<std::unique_ptr<TextStream>> Open(const std::string& spec);
  ~TextStream();

  // The next usable document's text into *text: true, or false at the end of the last file.
  // Errors (corrupt or truncated gzip) name the file and the line reached. Memory: one line.
  absl::StatusOr<bool> Next(std::string* text);

  const std::vector<std::string>& files() const { return files_; }
  int64_t documents() const { return documents_; }  // usable documents returned so far
  int64_t malformed_lines() const { return malformed_; }
  int64_t empty_texts() const { return empty_; }
  // "file:line" of the last line read, for messages.
  std::string location() const;

 private:
  TextStream() = default;
  bool OpenNext();
  absl::StatusOr<bool> NextPlain(std::string* text);
  // The current JSON-lines file's next line ('\n' included when present), NUL bytes and all;
  // false at its end.
  absl::StatusOr<bool> NextLine(std::string* line);
  std::vector<std::string> files_;
  size_t file_index_ = 0;
  void* gz_ = nullptr;        // gzFile of files_[file_index_ - 1]
  int64_t line_ = 0;          // JSON lines: lines read; plain text: documents read
  bool plain_ = false;        // the current file is plain text
  std::string plain_buffer_;  // bytes read but not yet returned (plain text or JSON lines)
  int64_t documents_ = 0, malformed_ = 0, empty_ = 0;
};

}  // namespace pmpd::models
