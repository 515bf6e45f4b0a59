// base/atomic_file.h: the one crash-safe writer. Real SIGKILLs of forked writers: at each commit
// stage (PMPD_CRASH_AT) and at random moments of a large write; what a kill leaves is the previous
// state or the complete new one, for single files and for directories (entries carried over).
#include "base/atomic_file.h"

#include <dirent.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/test_util.h"

namespace pmpd::base {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

std::set<std::string> Names(const std::string& dir) {
  std::set<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string n = e->d_name;
      if (n != "." && n != "..") out.insert(n);
    }
    ::closedir(d);
  }
  return out;
}

// Runs `work` in a forked child with PMPD_CRASH_AT=`crash_at` (empty: unset); returns true when the
// child died of SIGKILL, false when it exited 0 (anything else fails the test).
bool RunChild(const std::string& crash_at, const std::function<absl::Status()>& work) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (crash_at.empty()) {
      ::unsetenv("PMPD_CRASH_AT");
    } else {
      ::setenv("PMPD_CRASH_AT", crash_at.c_str(), 1);
    }
    _exit(work().ok() ? 0 : 3);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
    return true;
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  return false;
}

TEST(AtomicFileTest, KillAtEachStageLeavesThePreviousOrTheNewFile) {
  const std::string dir = testing::MakeTempDir("atomic_file_stages");
  const std::string path = dir + "/out.json";
  ASSERT_TRUE(WriteFileAtomically(path, "previous").ok());
  auto write_new = [&] { return WriteFileAtomically(path, "new contents"); };

  EXPECT_TRUE(RunChild("out.json:written", write_new));
  EXPECT_EQ(Read(path), "previous");
  int temporaries = 0;
  for (const std::string& n : Names(dir)) temporaries += IsAtomicFileTemporary(n);
  EXPECT_EQ(temporaries, 1) << "the killed writer's temporary stays beside the file";

  EXPECT_TRUE(RunChild("out.json:renamed", write_new));
  EXPECT_EQ(Read(path), "new contents");

  // Another suffix or stage does not fire; the N-th match does.
  EXPECT_FALSE(RunChild("other.json:written", [&] { return WriteFileAtomically(path, "third"); }));
  EXPECT_EQ(Read(path), "third");
  EXPECT_TRUE(RunChild("out.json:written:2", [&] {
    if (auto st = WriteFileAtomically(path, "fourth"); !st.ok()) return st;
    return WriteFileAtomically(path, "fifth");
  }));
  EXPECT_EQ(Read(path), "fourth");
}

// A writer replacing a 4 MiB file over and over with one of two contents, killed at 12 random
// moments (most land inside a write): the file is always exactly one of the two.
TEST(AtomicFileTest, RandomKillsDuringLargeWritesNeverLeaveAPrefix) {
  const std::string path = testing::MakeTempDir("atomic_file_random") + "/big.bin";
  const std::string a(4 << 20, 'a'), b(4 << 20, 'b');
  ASSERT_TRUE(WriteFileAtomically(path, a).ok());
  std::mt19937 rng(1);
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      for (int i = 0;; ++i) {
        if (!WriteFileAtomically(path, i % 2 ? a : b).ok()) _exit(3);
      }
    }
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 60000));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped on its own";
    const std::string got = Read(path);
    ASSERT_TRUE(got == a || got == b)
        << "round " << round << ": " << got.size() << " bytes, not one whole version";
  }
  ASSERT_TRUE(RemoveStaleTemporaries(path).ok());  // the killed writers' temporaries
  EXPECT_EQ(Names(path.substr(0, path.rfind('/'))), (std::set<std::string>{"big.bin"}));
}

void MakeTree(const std::string& dir, const std::string& a, const std::string& b) {
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  testing::WriteFile(dir + "/a.txt", a);
  testing::WriteFile(dir + "/b.txt", b);
  ASSERT_EQ(::mkdir((dir + "/keep").c_str(), 0755), 0);
  testing::WriteFile(dir + "/keep/state.bin", "resumable state");
}

// The new export writes a.txt and c.txt; b.txt and keep/ belong to the previous directory only,
// and the commit keeps keep/ (resumable state) but not b.txt (a stale output).
absl::Status WriteNewTree(const std::string& path) {
  auto d = AtomicDirectory::Create(path);
  if (!d.ok()) return d.status();
  if (auto st = WriteFileAtomically(d->temp_path() + "/a.txt", "new a"); !st.ok()) return st;
  if (auto st = WriteFileAtomically(d->temp_path() + "/c.txt", "new c"); !st.ok()) return st;
  return d->Commit([](absl::string_view name) { return name == "keep"; });
}

TEST(AtomicDirectoryTest, KillBeforeTheExchangeLeavesThePreviousDirectory) {
  const std::string root = testing::MakeTempDir("atomic_dir_written");
  const std::string path = root + "/export";
  MakeTree(path, "old a", "old b");
  EXPECT_TRUE(RunChild("/export:written", [&] { return WriteNewTree(path); }));
  EXPECT_EQ(Names(path), (std::set<std::string>{"a.txt", "b.txt", "keep"}));
  EXPECT_EQ(Read(path + "/a.txt"), "old a");
  EXPECT_EQ(Read(path + "/b.txt"), "old b");
  EXPECT_EQ(Read(path + "/keep/state.bin"), "resumable state");
}

TEST(AtomicDirectoryTest, KillAfterTheExchangeLeavesTheNewFilesAndWhatWasKept) {
  const std::string root = testing::MakeTempDir("atomic_dir_renamed");
  const std::string path = root + "/export";
  MakeTree(path, "old a", "old b");
  EXPECT_TRUE(RunChild("/export:renamed", [&] { return WriteNewTree(path); }));
  EXPECT_EQ(Names(path), (std::set<std::string>{"a.txt", "c.txt", "keep"}));
  EXPECT_EQ(Read(path + "/a.txt"), "new a");
  EXPECT_EQ(Read(path + "/c.txt"), "new c");
  EXPECT_EQ(Read(path + "/keep/state.bin"), "resumable state");
}

// Where the file system cannot exchange two directories: the previous one goes aside, the new one
// in. Killed between the two renames the path is absent, and the next writer puts the previous
// directory back before it starts; killed after, the new tree is complete.
TEST(AtomicDirectoryTest, NoExchangeFallbackIsRecoveredAfterAKill) {
  const std::string root = testing::MakeTempDir("atomic_dir_fallback");
  const std::string path = root + "/export";
  MakeTree(path, "old a", "old b");
  ::setenv("PMPD_ATOMIC_DIR_NO_EXCHANGE", "1", 1);
  EXPECT_TRUE(RunChild("/export:aside", [&] { return WriteNewTree(path); }));
  EXPECT_FALSE(Exists(path));
  {
    auto d = AtomicDirectory::Create(path);  // puts the previous directory back
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(Names(path), (std::set<std::string>{"a.txt", "b.txt", "keep"}));
    EXPECT_EQ(Read(path + "/a.txt"), "old a");
  }
  EXPECT_TRUE(RunChild("/export:renamed", [&] { return WriteNewTree(path); }));
  EXPECT_EQ(Names(path), (std::set<std::string>{"a.txt", "c.txt", "keep"}));
  ASSERT_TRUE(WriteNewTree(path).ok());
  ::unsetenv("PMPD_ATOMIC_DIR_NO_EXCHANGE");
  EXPECT_EQ(Read(path + "/a.txt"), "new a");
  EXPECT_EQ(Read(path + "/keep/state.bin"), "resumable state");
  for (const std::string& n : Names(root)) {
    EXPECT_TRUE(n == "export" || n.rfind("export.old.", 0) == 0) << n;
  }
}

TEST(AtomicDirectoryTest, CommitReplacesCreatesAndCleansUp) {
  const std::string root = testing::MakeTempDir("atomic_dir_commit");
  const std::string path = root + "/export";
  MakeTree(path, "old a", "old b");
  ASSERT_TRUE(WriteNewTree(path).ok());
  EXPECT_EQ(Read(path + "/a.txt"), "new a");
  EXPECT_EQ(Names(path), (std::set<std::string>{"a.txt", "c.txt", "keep"}));
  EXPECT_EQ(Names(root), (std::set<std::string>{"export"}))
      << "no temporary and no previous tree left";
  // A fresh path: killed before the rename it does not exist, after it it is complete.
  const std::string fresh = root + "/fresh";
  EXPECT_TRUE(RunChild("/fresh:written", [&] { return WriteNewTree(fresh); }));
  EXPECT_FALSE(Exists(fresh));
  int temporaries = 0;
  for (const std::string& n : Names(root)) temporaries += IsAtomicFileTemporary(n);
  EXPECT_EQ(temporaries, 1) << "the killed writer's temporary, never read as output";
  ASSERT_TRUE(WriteNewTree(fresh).ok());  // the next writer of the path removes it
  EXPECT_EQ(Names(fresh), (std::set<std::string>{"a.txt", "c.txt"}));
  // Abandoned without Commit: nothing appears, the temporary goes.
  {
    auto d = AtomicDirectory::Create(root + "/abandoned");
    ASSERT_TRUE(d.ok());
    testing::WriteFile(d->temp_path() + "/x", "x");
  }
  EXPECT_EQ(Names(root), (std::set<std::string>{"export", "fresh"}));
  // "." is refused; a symlink to a directory replaces the directory it points to.
  EXPECT_EQ(AtomicDirectory::Create(root + "/.").status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_EQ(::symlink((root + "/fresh").c_str(), (root + "/link").c_str()), 0);
  testing::WriteFile(fresh + "/old.txt", "old");
  ASSERT_TRUE(WriteNewTree(root + "/link").ok());
  struct stat st;
  ASSERT_EQ(::lstat((root + "/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(Names(fresh), (std::set<std::string>{"a.txt", "c.txt"}));
  ASSERT_EQ(::unlink((root + "/link").c_str()), 0);
  // A file where the directory should go is an error, not a replacement.
  testing::WriteFile(root + "/plain", "not a directory");
  const absl::Status bad = WriteNewTree(root + "/plain");
  EXPECT_EQ(bad.code(), absl::StatusCode::kFailedPrecondition) << bad;
  EXPECT_EQ(Read(root + "/plain"), "not a directory");
}

TEST(AtomicFileTest, TemporaryNamesAndErrors) {
  EXPECT_TRUE(IsAtomicFileTemporary("seg_000000001_000000002.h5.tmp.Ab12Cd"));
  EXPECT_FALSE(IsAtomicFileTemporary("seg_000000001_000000002.h5"));
  EXPECT_FALSE(IsAtomicFileTemporary(".tmp.abcdef"));
  EXPECT_FALSE(IsAtomicFileTemporary("x.tmp.abc"));
  const absl::Status st = WriteFileAtomically("/nonexistent-dir-pmpd/x.json", "x");
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("/nonexistent-dir-pmpd/x.json"), std::string::npos) << st;
  EXPECT_TRUE(RemoveTree("/nonexistent-dir-pmpd/y").ok());
}

}  // namespace
}  // namespace pmpd::base
