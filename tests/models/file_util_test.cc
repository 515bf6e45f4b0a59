#include "models/file_util.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "models/hdf5_file.h"
#include "models/safetensors.h"
#include "models/text_stream.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::WriteFile;

TEST(WriteFileAtomicallyTest, WritesAReadableFileAndLeavesNoTemporary) {
  const std::string dir = MakeTempDir("atomic_write");
  const std::string path = JoinPath(dir, "out.json");
  ASSERT_TRUE(base::WriteFileAtomically(path, "first").ok());
  ASSERT_TRUE(base::WriteFileAtomically(path, "second").ok());
  EXPECT_EQ(ReadFile(path), "second");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0644u);
  auto names = ListDirectory(dir);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"out.json"});
}

// A symlink planted at the temporary name the writer used to use (<path>.tmp.<pid>) must not be
// followed: the file it points to stays as it was and the output is a regular file.
TEST(WriteFileAtomicallyTest, PlantedSymlinkAtAGuessableTempNameIsNotFollowed) {
  const std::string dir = MakeTempDir("atomic_write_symlink");
  const std::string victim = JoinPath(dir, "victim.txt");
  WriteFile(victim, "precious");
  const std::string path = JoinPath(dir, "manifest.json");
  ASSERT_EQ(::symlink(victim.c_str(), absl::StrCat(path, ".tmp.", ::getpid()).c_str()), 0);
  ASSERT_TRUE(base::WriteFileAtomically(path, "{}").ok());
  EXPECT_EQ(ReadFile(victim), "precious");
  EXPECT_EQ(ReadFile(path), "{}");
  struct stat st;
  ASSERT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "the output became a symlink";
}

TEST(WriteFileAtomicallyTest, MissingDirectoryIsAClearError) {
  const auto st = base::WriteFileAtomically("/nonexistent-dir-pmpd/x.json", "x");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(absl::StrContains(st.message(), "/nonexistent-dir-pmpd/x.json")) << st.message();
}

// Issue 17: a FIFO given as an input hung the loader (open blocks until a writer appears). Every
// reader now refuses it at once, naming it; SIGALRM fails the test instead of a hang.
TEST(CheckRegularFileTest, AFifoIsRefusedByEveryReaderWithoutBlocking) {
  const std::string dir = MakeTempDir("fifo");
  const std::string fifo = dir + "/model.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0);
  ::alarm(30);
  auto expect_refused = [&](const absl::Status& st, const char* reader) {
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << reader << ": " << st;
    EXPECT_TRUE(absl::StrContains(st.message(), fifo + ": not a regular file (a FIFO)"))
        << reader << ": " << st;
  };
  expect_refused(CheckRegularFile(fifo), "CheckRegularFile");
  expect_refused(ReadFileToString(fifo).status(), "ReadFileToString");
  expect_refused(SafetensorsFile::Open(fifo).status(), "SafetensorsFile");
  expect_refused(Hdf5File::Open(fifo).status(), "Hdf5File");
  expect_refused(TextStream::Open(fifo).status(), "TextStream");
  ::alarm(0);
  EXPECT_EQ(CheckRegularFile(dir).message(), dir + ": not a regular file (a directory)");
  EXPECT_EQ(CheckRegularFile(dir + "/absent").code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace pmpd::models
