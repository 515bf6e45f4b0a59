#include "base/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>  // renameat2, RENAME_EXCHANGE (glibc >= 2.28)
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace pmpd::base {
namespace {

constexpr absl::string_view kTempInfix = ".tmp.";

std::string Errno() { return std::strerror(errno); }

// PMPD_CRASH_AT=SUFFIX:STAGE[:N] (see the header): SIGKILL at the N-th commit stage that matches.
// Read at every commit (not cached), so a forked test child can set it.
void MaybeCrash(const std::string& path, absl::string_view stage) {
  static std::atomic<int> matches{0};
  const char* spec = ::getenv("PMPD_CRASH_AT");
  if (spec == nullptr || *spec == '\0') return;
  std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  int n = 1;
  if (parts.size() == 3 && absl::SimpleAtoi(parts[2], &n)) parts.pop_back();
  if (parts.size() != 2 || parts[1] != stage || !absl::EndsWith(path, parts[0])) return;
  if (++matches == n) ::raise(SIGKILL);
}

// fsync of every regular file under `dir` and of every directory (deepest first).
absl::Status SyncTree(const std::string& dir) {
  static thread_local absl::Status* failure = nullptr;
  absl::Status st;
  failure = &st;
  const int rc = ::nftw(
      dir.c_str(),
      [](const char* p, const struct stat* sb, int type, struct FTW*) -> int {
        if (type == FTW_DNR) {
          *failure = absl::InternalError(absl::StrCat(p, ": cannot read the directory"));
          return 1;
        }
        if (!(type == FTW_F && S_ISREG(sb->st_mode)) && type != FTW_DP) return 0;  // no FIFOs etc.
        if (absl::Status s = SyncPath(p); !s.ok()) {
          *failure = s;
          return 1;
        }
        return 0;
      },
      16, FTW_PHYS | FTW_DEPTH);
  failure = nullptr;
  if (!st.ok()) return st;
  if (rc != 0)
    return absl::InternalError(absl::StrCat(dir, ": cannot walk the directory: ", Errno()));
  return absl::OkStatus();
}

// Entries of `from` missing in `to` (at the top level only those `keep` names), recursively:
// directories recreated, files and symlinks hard linked (same inode: no copy, and `from` keeps them
// until it is deleted).
absl::Status CarryOver(const std::string& from, const std::string& to,
                       const std::function<bool(absl::string_view)>& keep) {
  DIR* d = ::opendir(from.c_str());
  if (d == nullptr)
    return absl::InternalError(absl::StrCat(from, ": cannot open directory: ", Errno()));
  std::vector<std::pair<std::string, bool>> entries;  // name, is a directory
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n == "." || n == ".." || (keep && !keep(n))) continue;
    struct stat st;
    if (::lstat(absl::StrCat(from, "/", n).c_str(), &st) != 0) continue;  // gone meanwhile
    entries.emplace_back(n, S_ISDIR(st.st_mode));
  }
  ::closedir(d);
  for (const auto& [name, is_dir] : entries) {
    const std::string src = absl::StrCat(from, "/", name), dst = absl::StrCat(to, "/", name);
    struct stat there;
    const bool exists = ::lstat(dst.c_str(), &there) == 0;
    if (is_dir) {
      if (exists && !S_ISDIR(there.st_mode))
        continue;  // the new tree has a file by that name: it wins
      if (!exists && ::mkdir(dst.c_str(), 0755) != 0) {
        return absl::InternalError(absl::StrCat(dst, ": cannot create: ", Errno()));
      }
      if (absl::Status st = CarryOver(src, dst, nullptr); !st.ok()) return st;
    } else if (!exists && ::link(src.c_str(), dst.c_str()) != 0) {
      return absl::InternalError(absl::StrCat(src, ": cannot link into ", to, ": ", Errno()));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AtomicFile> AtomicFile::Create(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("cannot write to an empty path");
  std::string tmp = absl::StrCat(path, kTempInfix, "XXXXXX");
  const int fd = ::mkstemp(tmp.data());
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat(path, ": cannot create a temporary file beside it: ", Errno()));
  }
  if (::fchmod(fd, 0644) != 0) {  // mkstemp makes 0600; outputs are ordinary readable files
    const std::string err = Errno();
    ::close(fd);
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(tmp, ": chmod failed: ", err));
  }
  ::close(fd);
  return AtomicFile(path, std::move(tmp));
}

AtomicFile::AtomicFile(AtomicFile&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::exchange(other.temp_, std::string())) {}

AtomicFile& AtomicFile::operator=(AtomicFile&& other) noexcept {
  if (this != &other) {
    if (!temp_.empty()) ::unlink(temp_.c_str());
    path_ = std::move(other.path_);
    temp_ = std::exchange(other.temp_, std::string());
  }
  return *this;
}

AtomicFile::~AtomicFile() {
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

absl::Status AtomicFile::Commit() {
  if (temp_.empty())
    return absl::FailedPreconditionError(absl::StrCat(path_, ": already committed"));
  const std::string tmp = std::exchange(temp_, std::string());
  MaybeCrash(path_, "written");
  if (absl::Status st = SyncPath(tmp); !st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  if (::rename(tmp.c_str(), path_.c_str()) != 0) {
    const std::string err = Errno();
    ::unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat(path_, ": cannot rename ", tmp, " into place: ", err));
  }
  MaybeCrash(path_, "renamed");
  return SyncPath(DirName(path_));
}

absl::StatusOr<AtomicDirectory> AtomicDirectory::Create(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty()) return absl::InvalidArgumentError("cannot write to an empty path");
  const std::string base = p.substr(p.rfind('/') + 1);
  if (base == "." || base == ".." || p == "/") {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": name the output directory itself, not . or .."));
  }
  // A symlink to a directory: the directory it points to is the one replaced.
  struct stat st;
  if (::lstat(p.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    char real[PATH_MAX];
    if (::realpath(p.c_str(), real) == nullptr) {
      return absl::InternalError(absl::StrCat(p, ": cannot resolve the symlink: ", Errno()));
    }
    p = real;
  }
  // A run killed between the two renames of the no-exchange fallback left the previous directory
  // aside: put it back before anything else.
  if (::lstat(p.c_str(), &st) != 0) {
    const std::string dir = DirName(p), name = p.substr(p.rfind('/') + 1);
    if (DIR* d = ::opendir(dir.c_str())) {
      std::string aside;
      while (dirent* e = ::readdir(d)) {
        const absl::string_view n = e->d_name;
        if (absl::StartsWith(n, absl::StrCat(name, ".old.")) && n.size() == name.size() + 11) {
          aside = absl::StrCat(dir, "/", n);
        }
      }
      ::closedir(d);
      if (!aside.empty() && ::rename(aside.c_str(), p.c_str()) != 0) {
        return absl::InternalError(absl::StrCat(p, ": cannot restore ", aside, ": ", Errno()));
      }
    }
  }
  RemoveStaleTemporaries(p).IgnoreError();  // a killed writer's: never output
  std::string tmp = absl::StrCat(p, kTempInfix, "XXXXXX");
  if (::mkdtemp(tmp.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat(p, ": cannot create a temporary directory beside it: ", Errno()));
  }
  if (::chmod(tmp.c_str(), 0755) != 0) {  // mkdtemp makes 0700
    const std::string err = Errno();
    ::rmdir(tmp.c_str());
    return absl::InternalError(absl::StrCat(tmp, ": chmod failed: ", err));
  }
  return AtomicDirectory(std::move(p), std::move(tmp));
}

AtomicDirectory::AtomicDirectory(AtomicDirectory&& other) noexcept
    : path_(std::move(other.path_)), temp_(std::exchange(other.temp_, std::string())) {}

AtomicDirectory& AtomicDirectory::operator=(AtomicDirectory&& other) noexcept {
  if (this != &other) {
    if (!temp_.empty()) RemoveTree(temp_).IgnoreError();
    path_ = std::move(other.path_);
    temp_ = std::exchange(other.temp_, std::string());
  }
  return *this;
}

AtomicDirectory::~AtomicDirectory() {
  if (!temp_.empty()) RemoveTree(temp_).IgnoreError();
}

absl::Status AtomicDirectory::Commit(const std::function<bool(absl::string_view)>& keep) {
  if (temp_.empty())
    return absl::FailedPreconditionError(absl::StrCat(path_, ": already committed"));
  const std::string tmp = std::exchange(temp_, std::string());
  auto fail = [&](absl::Status st) {
    RemoveTree(tmp).IgnoreError();
    return st;
  };
  MaybeCrash(path_, "written");
  struct stat old;
  const bool exists = ::lstat(path_.c_str(), &old) == 0;
  if (exists && !S_ISDIR(old.st_mode)) {
    return fail(
        absl::FailedPreconditionError(absl::StrCat(path_, ": exists and is not a directory")));
  }
  if (exists && keep) {
    if (absl::Status st = CarryOver(path_, tmp, keep); !st.ok()) return fail(st);
  }
  if (absl::Status st = SyncTree(tmp); !st.ok()) return fail(st);
  std::string previous;  // the replaced tree, deleted once the parent is synced
  const bool no_exchange = ::getenv("PMPD_ATOMIC_DIR_NO_EXCHANGE") != nullptr;
  if (!exists) {  // nothing there yet: one rename
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      return fail(absl::InternalError(
          absl::StrCat(path_, ": cannot rename ", tmp, " into place: ", Errno())));
    }
  } else if (!no_exchange &&
             ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) == 0) {
    previous = tmp;
  } else if (no_exchange || errno == EINVAL || errno == ENOSYS) {
    // No exchange on this file system: the previous tree aside, then the new one in. A kill
    // between the two renames leaves path absent and NAME.old.XXXXXX beside it, which the next
    // Create on this path puts back.
    std::string aside = absl::StrCat(path_, ".old.XXXXXX");
    if (::mkdtemp(aside.data()) == nullptr) {
      return fail(
          absl::InternalError(absl::StrCat(path_, ": cannot create ", aside, ": ", Errno())));
    }
    if (::rename(path_.c_str(), aside.c_str()) != 0) {
      const std::string err = Errno();
      ::rmdir(aside.c_str());
      return fail(absl::InternalError(
          absl::StrCat(path_, ": cannot move the previous directory aside: ", err)));
    }
    MaybeCrash(path_, "aside");
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      const std::string err = Errno();
      ::rename(aside.c_str(), path_.c_str());
      return fail(
          absl::InternalError(absl::StrCat(path_, ": cannot rename ", tmp, " into place: ", err)));
    }
    previous = aside;
  } else {
    return fail(
        absl::InternalError(absl::StrCat(path_, ": cannot exchange with ", tmp, ": ", Errno())));
  }
  MaybeCrash(path_, "renamed");
  if (absl::Status st = SyncPath(DirName(path_)); !st.ok()) return st;
  // The new tree is in place and durable; failing to delete the old one is not the caller's error.
  if (!previous.empty()) {
    if (absl::Status st = RemoveTree(previous); !st.ok()) {
      std::fprintf(stderr, "warning: %s\n", std::string(st.message()).c_str());
    }
  }
  return absl::OkStatus();
}

std::string DirName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == absl::string_view::npos) return ".";
  return slash == 0 ? "/" : std::string(path.substr(0, slash));
}

absl::Status RemoveStaleTemporaries(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const std::string dir = DirName(p), name = p.substr(p.rfind('/') + 1);
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return absl::OkStatus();
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    const absl::string_view n = e->d_name;
    if (IsAtomicFileTemporary(n) && n.substr(0, n.rfind(kTempInfix)) == name) {
      stale.push_back(absl::StrCat(dir, "/", n));
    }
  }
  ::closedir(d);
  for (const std::string& s : stale) {
    if (absl::Status st = RemoveTree(s); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return absl::OkStatus();
  const int rc = ::nftw(
      path.c_str(),
      [](const char* p, const struct stat*, int, struct FTW*) -> int { return ::remove(p); }, 16,
      FTW_PHYS | FTW_DEPTH);
  if (rc != 0) return absl::InternalError(absl::StrCat(path, ": cannot delete: ", Errno()));
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view contents) {
  absl::StatusOr<AtomicFile> f = AtomicFile::Create(path);
  if (!f.ok()) return f.status();
  const int fd = ::open(f->temp_path().c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return absl::InternalError(absl::StrCat(f->temp_path(), ": cannot open: ", Errno()));
  const char* p = contents.data();
  size_t left = contents.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string err = n < 0 ? Errno() : "wrote nothing";
      ::close(fd);
      return absl::InternalError(absl::StrCat(f->temp_path(), ": write failed: ", err));
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (::close(fd) != 0)
    return absl::InternalError(absl::StrCat(f->temp_path(), ": close failed: ", Errno()));
  return f->Commit();
}

absl::Status SyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return absl::InternalError(absl::StrCat(path, ": cannot open for fsync: ", Errno()));
  const int rc = ::fsync(fd);
  const std::string err = rc == 0 ? "" : Errno();
  ::close(fd);
  return rc == 0 ? absl::OkStatus()
                 : absl::InternalError(absl::StrCat(path, ": fsync failed: ", err));
}

bool IsAtomicFileTemporary(absl::string_view name) {
  const size_t at = name.rfind(kTempInfix);
  return at != absl::string_view::npos && at > 0 && name.size() - at - kTempInfix.size() == 6;
}

}  // namespace pmpd::base
