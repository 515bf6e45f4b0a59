// Bad journals and mismatched studies: torn tails are recovered with a warning, corruption in the
// middle and foreign settings are errors that name the file (and the line).
#include "hpo/journal.h"

#include <gtest/gtest.h>

#include "hpo/crc32.h"
#include "hpo/study.h"
#include "tests/hpo/hpo_test_util.h"
#include "tests/test_util.h"

namespace pmpd::hpo {
namespace {

using ::pmpd::hpo::testing::MixedSpace;
using ::pmpd::hpo::testing::OpenOrDie;
using ::pmpd::hpo::testing::Warnings;
using ::pmpd::testing::MakeTempDir;
using ::pmpd::testing::ReadFile;
using ::pmpd::testing::WriteFile;

// A study with `n` complete trials in `dir`; returns its journal path.
std::string MakeStudy(const std::string& dir, int n) {
  std::unique_ptr<Study> study = OpenOrDie(dir, MixedSpace(), {});
  for (int i = 0; i < n; ++i) {
    const Trial t = *study->Ask();
    EXPECT_TRUE(study->Report(t.number(), 0, 1.0 + i).ok());
    EXPECT_TRUE(study->Tell(t.number(), 0.5 + i).ok());
  }
  return JournalPath(dir);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  return lines;
}

TEST(HpoJournalTest, LinesCarryTheirChecksum) {
  const nlohmann::json record = {{"op", "heartbeat"}, {"t", 1.5}, {"worker", "h:1:x"}};
  const std::string line = EncodeJournalLine(record);
  const std::string text = record.dump();
  char crc[9];
  std::snprintf(crc, sizeof(crc), "%08x", Crc32(text));
  EXPECT_EQ(line, std::string(crc) + " " + text + "\n");
}

TEST(HpoJournalTest, TornLastLineIsCutOffWithAWarning) {
  const std::string dir = MakeTempDir("hpo_torn");
  const std::string path = MakeStudy(dir, 3);
  const std::string good = ReadFile(path);
  const size_t n_lines = Lines(good).size();
  // Half a record without its newline, as a writer killed mid-write leaves it.
  const std::string half = EncodeJournalLine({{"op", "finish"}, {"number", 3}}).substr(0, 20);
  WriteFile(path, good + half);
  Warnings warnings;
  StudyOptions options;
  options.warn = warnings.Sink();
  {
    std::unique_ptr<Study> study = OpenOrDie(dir, MixedSpace(), options);
    ASSERT_NE(study, nullptr);
    ASSERT_EQ(warnings.messages().size(), 1u);
    const std::string w = warnings.messages()[0];
    EXPECT_NE(w.find(path + ":" + std::to_string(n_lines + 1) + ": torn last record"),
              std::string::npos)
        << w;
    EXPECT_EQ(ReadFile(path), good);  // cut off, so the next append starts on a fresh line
    EXPECT_EQ(study->Trials()->size(), 3u);
    EXPECT_EQ(study->Ask()->number(), 3);
  }
  // A complete last line with a bad checksum is a torn write too (the tail of the line is lost).
  std::string text = ReadFile(path);
  text[text.size() - 3] ^= 0x01;
  WriteFile(path, text);
  std::unique_ptr<Study> study = OpenOrDie(dir, MixedSpace(), options);
  ASSERT_NE(study, nullptr);
  EXPECT_EQ(warnings.Count("checksum mismatch"), 1);
  EXPECT_EQ(study->Trials()->size(), 3u);  // the trial record of trial 3 was the last line
}

TEST(HpoJournalTest, CorruptedMiddleLineIsAnErrorNamingTheLine) {
  const std::string dir = MakeTempDir("hpo_corrupt");
  const std::string path = MakeStudy(dir, 3);
  std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_GE(lines.size(), 6u);
  // Line 3 (the first report): flip one digit of the value.
  const size_t pos = lines[2].find("\"value\":1");
  ASSERT_NE(pos, std::string::npos) << lines[2];
  lines[2][pos + 8] = '7';
  std::string text;
  for (const std::string& l : lines) text += l + "\n";
  WriteFile(path, text);
  absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, MixedSpace(), {});
  ASSERT_FALSE(study.ok());
  EXPECT_TRUE(absl::IsDataLoss(study.status())) << study.status();
  EXPECT_NE(study.status().message().find(path + ":3: corrupted record (checksum mismatch)"),
            absl::string_view::npos)
      << study.status();
}

TEST(HpoJournalTest, InconsistentRecordsAreErrorsNamingTheLine) {
  const std::string dir = MakeTempDir("hpo_inconsistent");
  const std::string path = MakeStudy(dir, 1);
  WriteFile(path, ReadFile(path) + EncodeJournalLine({{"op", "finish"},
                                                      {"number", 9},
                                                      {"state", "complete"},
                                                      {"value", 1.0},
                                                      {"t", 0.0}}));
  const size_t n_lines = Lines(ReadFile(path)).size();
  absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, MixedSpace(), {});
  ASSERT_FALSE(study.ok());
  EXPECT_NE(study.status().message().find(path + ":" + std::to_string(n_lines) +
                                          ": inconsistent record: no trial 9"),
            absl::string_view::npos)
      << study.status();
}

TEST(HpoJournalTest, AnotherSpaceOrSettingsIsAClearError) {
  const std::string dir = MakeTempDir("hpo_other");
  MakeStudy(dir, 1);
  absl::StatusOr<SearchSpace> other = SearchSpace::FromParams(
      {ParamSpec::Float("x", -3.0, 4.0), ParamSpec::Int("n", 1, 16, 1, true),
       ParamSpec::Categorical("c", {"a", "b", "c"})});
  ASSERT_TRUE(other.ok());
  absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, *other, {});
  ASSERT_FALSE(study.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(study.status()));
  const std::string m(study.status().message());
  EXPECT_NE(
      m.find(JournalPath(dir) + ": this study was created with another search space: params[0] is"),
      std::string::npos)
      << m;
  EXPECT_NE(m.find("\"high\":3.0"), std::string::npos) << m;

  StudyOptions seeded;
  seeded.seed = 2;
  study = Study::Open(dir, MixedSpace(), seeded);
  ASSERT_FALSE(study.ok());
  EXPECT_NE(study.status().message().find("seed is 0 in the journal, 2 in the options"),
            absl::string_view::npos)
      << study.status();
  StudyOptions random;
  random.sampler.type = SamplerConfig::Type::kRandom;
  study = Study::Open(dir, MixedSpace(), random);
  ASSERT_FALSE(study.ok());
  EXPECT_NE(study.status().message().find("sampler is {\"constant_liar\":false"),
            absl::string_view::npos)
      << study.status();
  StudyOptions maximize;
  maximize.direction = Direction::kMaximize;
  EXPECT_FALSE(Study::Open(dir, MixedSpace(), maximize).ok());
  // This journal records no objective context (as journals written before it existed): any opens.
  StudyOptions with_context;
  with_context.objective_context = {{"data", "a.h5"}, {"balance", "none"}};
  EXPECT_TRUE(Study::Open(dir, MixedSpace(), with_context).ok());
  // A study that records one: the same context reopens it (and OpenExisting reads it back), another
  // is refused naming each field that differs.
  const std::string dir2 = MakeTempDir("hpo_context");
  ASSERT_TRUE(Study::Open(dir2, MixedSpace(), with_context).ok());
  EXPECT_TRUE(Study::Open(dir2, MixedSpace(), with_context).ok());
  absl::StatusOr<std::unique_ptr<Study>> existing = Study::OpenExisting(dir2);
  ASSERT_TRUE(existing.ok()) << existing.status();
  EXPECT_EQ((*existing)->options().objective_context, with_context.objective_context);
  StudyOptions other_context;
  other_context.objective_context = {{"data", "b.h5"}, {"lr_fixed", 1}, {"balance", "none"}};
  study = Study::Open(dir2, MixedSpace(), other_context);
  ASSERT_FALSE(study.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(study.status()));
  EXPECT_NE(study.status().message().find(
                JournalPath(dir2) +
                ": this study's trials were made with other objective settings: data: \"a.h5\" "
                "in the journal, \"b.h5\" now; lr_fixed: absent in the journal, 1 now"),
            absl::string_view::npos)
      << study.status();
  EXPECT_FALSE(Study::Open(dir2, MixedSpace(), {}).ok());  // none given: also different

  absl::StatusOr<std::unique_ptr<Study>> missing = Study::OpenExisting(dir + "/nothing");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_NE(missing.status().message().find(dir + "/nothing: no study here"),
            absl::string_view::npos);
}

}  // namespace
}  // namespace pmpd::hpo
