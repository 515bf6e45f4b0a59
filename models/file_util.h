// Small file helpers used at layer boundaries. Errors name the path.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::models {

absl::StatusOr<std::string> ReadFileToString(const std::string& path);

// Writes `contents` to path via a temporary file in the same directory (a fresh mkstemp name, so a
// planted file or symlink is never written through), fsync, rename, fsync of the directory, so a
// crash leaves either the old file or the new one. The file gets mode 0644.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

bool FileExists(const std::string& path);

// Names in `dir` (not "." or ".."), sorted. Errors name the directory.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& dir);

// fsync of a file or directory (a directory: so a rename inside it survives a power loss).
absl::Status SyncPath(const std::string& path);

// mkdir -p: creates `dir` and missing parents. Errors name the directory.
absl::Status MakeDirs(const std::string& dir);

std::string JoinPath(absl::string_view dir, absl::string_view name);

// The directory part of `path`: "." when it has no '/', "/" for a file in the root.
std::string DirName(absl::string_view path);

}  // namespace pmpd::models
