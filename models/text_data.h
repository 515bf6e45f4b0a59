// Text datasets for calibration and evaluation: JSON-lines files (.json, .jsonl, optionally .gz)
// with a `text` field, as published for C4, or plain text files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

struct TextDocs {
  std::vector<std::string> texts;
  int malformed_lines = 0;  // not JSON, not an object, or no string `text`: skipped and counted
  int empty_texts = 0;      // skipped and counted
};

// One JSON-lines record: kText with the `text` field in *text, kBlank for an empty line, kEmpty for
// a record whose text is only whitespace, kMalformed for anything else (not JSON, not an object, no
// string `text`).
enum class TextLine { kText, kBlank, kEmpty, kMalformed };
TextLine ParseJsonTextLine(absl::string_view line, std::string* text);

// Reads up to max_docs (<= 0: all) documents. JSON-lines when the name ends in .json, .jsonl,
// .json.gz or .jsonl.gz; otherwise plain text, split into documents at "<|endoftext|>" markers
// (one document if there are none). [begin_fraction, end_fraction) selects part of the
// (decompressed) bytes, moved forward to document boundaries, e.g. 0.75, 1.0 for a held-out last
// quarter. Errors: missing file, corrupt gzip, or no usable document.
absl::StatusOr<TextDocs> ReadTextDocs(const std::string& path, int max_docs = 0,
                                      double begin_fraction = 0.0, double end_fraction = 1.0);

}  // namespace pmpd::models
