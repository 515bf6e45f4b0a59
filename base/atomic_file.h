// The one crash-safe way pmpd writes an output that promises "absent or complete": write a
// temporary file beside the target, fsync it, rename it over the target, fsync the directory. A
// kill -9 (or a power loss after the call returns) leaves either the previous file or the complete
// new one, never a prefix. Every writer goes through this: segment and final gen-data files,
// training checkpoints, exported classifiers, quantized checkpoints, reports.
//
// Outputs made of several files (a quantized checkpoint, exported classifiers) use AtomicDirectory:
// the whole directory is built beside the target and swapped in with one atomic exchange.
//
// Leftovers: a process killed between Create and Commit leaves its temporary (NAME.tmp.XXXXXX)
// beside the target; it is never read as output, and IsAtomicFileTemporary names it for cleanup.
//
// Crash testing: with PMPD_CRASH_AT=SUFFIX:STAGE[:N] in the environment the process SIGKILLs itself
// at STAGE of the N-th (default 1st) commit whose target path ends with SUFFIX: "written" (the
// temporary is complete, nothing is synced or renamed yet), "aside" (AtomicDirectory's no-exchange
// fallback: the previous directory moved aside, the new one not yet in) or "renamed" (the new file
// or directory is in place, the parent not yet synced). PMPD_ATOMIC_DIR_NO_EXCHANGE=1 forces that
// fallback (for its tests). Tests use it to kill every writer exactly inside its
// commit (tests/base/atomic_file_test.cc and one test per writer); unset, it costs one getenv.
#pragma once

#include <functional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace pmpd::base {

// A file that appears at path() complete or not at all. Write the bytes to temp_path() with any
// writer (our own bytes, HDF5, torch::save), close it, then Commit(). Destroyed without Commit (an
// error on the way), the temporary is removed. Move-only.
class AtomicFile {
 public:
  // Creates the temporary beside `path`: a fresh mkstemp name (O_CREAT | O_EXCL, so nothing planted
  // at a guessable name is truncated; WriteFileAtomically also reopens it with O_NOFOLLOW, writers
  // that reopen it by name such as HDF5 do not), mode 0644 (not reduced by the umask), empty.
  static absl::StatusOr<AtomicFile> Create(const std::string& path);

  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&& other) noexcept;
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

  // fsync(temporary), rename(temporary, path), fsync(directory of path). After an error the
  // temporary is removed and path() is unchanged (or, when only the directory fsync failed, the new
  // file is in place but not yet durable). At most once.
  absl::Status Commit();

 private:
  AtomicFile(std::string path, std::string temp) : path_(std::move(path)), temp_(std::move(temp)) {}
  std::string path_, temp_;  // temp_ empty: committed or moved from
};

// A directory whose files appear complete or not at all, replacing the previous directory in one
// step: write the files into temp_path() (a fresh directory beside path), then Commit(keep): the
// previous directory's top-level entries that `keep` names and the new tree lacks (a trainer's
// checkpoints/, resumable partial state) are carried over as hard links (subdirectories
// recreated), every regular file and directory of the new tree is fsynced, the new tree is
// exchanged with path atomically (renameat2 RENAME_EXCHANGE; a plain rename when path does not
// exist), the parent is fsynced, then the previous tree is deleted. A kill -9 at any point leaves
// path() as it was or complete. Where the file system cannot exchange (EINVAL), the previous
// directory is renamed aside first (NAME.old.XXXXXX): a kill between the two renames leaves path()
// absent and the previous directory beside it, and the next Create on the path puts it back.
// Create also deletes a killed writer's temporaries of the same path. `path` may be a symlink to
// a directory (the directory is replaced), not "." or "..". Only one writer per path at a time.
// Destroyed without Commit: the temporary is removed.
class AtomicDirectory {
 public:
  static absl::StatusOr<AtomicDirectory> Create(const std::string& path);
  AtomicDirectory(AtomicDirectory&& other) noexcept;
  AtomicDirectory& operator=(AtomicDirectory&& other) noexcept;
  AtomicDirectory(const AtomicDirectory&) = delete;
  AtomicDirectory& operator=(const AtomicDirectory&) = delete;
  ~AtomicDirectory();

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }
  // `keep`: which of the previous directory's top-level names to carry over (null: none).
  absl::Status Commit(const std::function<bool(absl::string_view name)>& keep = nullptr);

 private:
  AtomicDirectory(std::string path, std::string temp)
      : path_(std::move(path)), temp_(std::move(temp)) {}
  std::string path_, temp_;
};

// Deletes the temporaries (NAME.tmp.XXXXXX, files or directories) a killed writer of `path` left
// beside it. For a writer starting on `path`; not while another writer of `path` runs.
absl::Status RemoveStaleTemporaries(const std::string& path);

// The directory part of `path`: "." when it has no '/', "/" for an entry of the root.
std::string DirName(absl::string_view path);

// Deletes `path` and everything under it (no error when it does not exist; symlinks are removed,
// never followed).
absl::Status RemoveTree(const std::string& path);

// AtomicFile for bytes in memory: path holds `contents` complete, or its previous state.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents);

// fsync of a file or directory (a directory: so a rename inside it survives a power loss).
absl::Status SyncPath(const std::string& path);

// Whether `name` (a file name, no directory) is an AtomicFile temporary: NAME.tmp.XXXXXX.
bool IsAtomicFileTemporary(absl::string_view name);

}  // namespace pmpd::base
