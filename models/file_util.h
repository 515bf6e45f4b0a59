// Small file helpers used at layer boundaries. Errors name the path. (Writing an output
// crash-safely: base/atomic_file.h.)
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

// Reads a regular file whole (a FIFO, device or directory is an error, never a hang).
absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// JSON text must not hold a NUL byte: nlohmann's parser stops there, so a valid document followed
// by "\0garbage" would be accepted. Error: "<source>: a NUL byte at offset N".
absl::Status CheckNoNulByte(absl::string_view text, absl::string_view source);

// OK when `path` is a regular file (symlinks followed); NotFound when it does not exist;
// InvalidArgument naming what it is otherwise. Does not block (stat, no open): every reader calls
// it before opening an input, so a FIFO given as a model file cannot hang a tool.
absl::Status CheckRegularFile(const std::string& path);

bool FileExists(const std::string& path);

// Names in `dir` (not "." or ".."), sorted. Errors name the directory.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// mkdir -p: creates `dir` and missing parents. Errors name the directory.
absl::Status MakeDirs(const std::string& dir);

std::string JoinPath(absl::string_view dir, absl::string_view name);

}  // namespace pmpd::models
