// The decisions cli/cli_common.h and cli/progress.h make for every tool, without running one:
// "did you mean", the colour rule (NO_COLOR), reading a prompt file, and the progress lines that
// logs get (no \r, a bounded number of lines) against the redrawn line a terminal gets.
#include "cli/cli_common.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "cli/progress.h"
#include "tests/test_util.h"

namespace pmpd::cli {
namespace {

TEST(CliCommonTest, SuggestsOnlyCloseFlagNames) {
  EXPECT_EQ(EditDistance("max_new_token", "max_new_tokens"), 1);
  EXPECT_EQ(EditDistance("", "abc"), 3);
  EXPECT_EQ(EditDistance("kitten", "sitting"), 3);
  const std::vector<std::string> flags = {"max_new_tokens", "temperature", "top_k",    "top_p",
                                          "seed",           "precisions",  "precision"};
  EXPECT_EQ(ClosestName("max_new_token", flags), "max_new_tokens");
  EXPECT_EQ(ClosestName("max_nwe_tokens", flags), "max_new_tokens");
  EXPECT_EQ(ClosestName("temprature", flags), "temperature");
  EXPECT_EQ(ClosestName("temp", flags), "temperature") << "a truncated name names its flag";
  EXPECT_EQ(ClosestName("precisoin", flags), "precision");
  EXPECT_EQ(ClosestName("frobnicate_it", flags), "");
  EXPECT_EQ(ClosestName("top", flags), "") << "a prefix of two flags is ambiguous";
  EXPECT_EQ(ClosestName("x", flags), "");
}

TEST(CliCommonTest, ColorFollowsTheFlagTheTerminalAndNoColor) {
  EXPECT_TRUE(*ShouldColor("always", false, "1", "dumb")) << "--color always always colours";
  EXPECT_FALSE(*ShouldColor("never", true, nullptr, "xterm"));
  EXPECT_TRUE(*ShouldColor("auto", true, nullptr, "xterm-256color"));
  EXPECT_TRUE(*ShouldColor("auto", true, "", "xterm")) << "an empty NO_COLOR is unset";
  EXPECT_FALSE(*ShouldColor("auto", true, "1", "xterm"));
  EXPECT_FALSE(*ShouldColor("auto", true, "0", "xterm")) << "any non-empty value disables";
  EXPECT_FALSE(*ShouldColor("auto", false, nullptr, "xterm"));
  EXPECT_FALSE(*ShouldColor("auto", true, nullptr, "dumb"));
  EXPECT_FALSE(ShouldColor("sometimes", true, nullptr, nullptr).ok());
}

TEST(CliCommonTest, DeviceVocabulary) {
  for (const char* d : {"cpu", "cuda", "auto"}) EXPECT_TRUE(CheckDeviceFlag(d).ok()) << d;
  EXPECT_FALSE(CheckDeviceFlag("gpu").ok());
  EXPECT_NE(CheckDeviceFlag("gpu").message().find("--device must be cpu, cuda or auto"),
            std::string::npos);
  EXPECT_TRUE(CheckDeviceFlag("auto", /*cpu_only=*/true).ok());
  EXPECT_FALSE(CheckDeviceFlag("cuda", /*cpu_only=*/true).ok());
}

TEST(CliCommonTest, ReadsAPromptFileWithoutItsLastNewline) {
  const std::string dir = testing::MakeTempDir("cli_read");
  testing::WriteFile(dir + "/p.txt", "Once upon\na time\n");
  EXPECT_EQ(*ReadTextInput(dir + "/p.txt", "--prompt-file"), "Once upon\na time");
  testing::WriteFile(dir + "/crlf.txt", "Hello\r\n");
  EXPECT_EQ(*ReadTextInput(dir + "/crlf.txt", "--prompt-file"), "Hello");
  testing::WriteFile(dir + "/two.txt", "Hello\n\n");
  EXPECT_EQ(*ReadTextInput(dir + "/two.txt", "--prompt-file"), "Hello\n");
  auto missing = ReadTextInput(dir + "/none.txt", "--prompt-file");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("--prompt-file " + dir + "/none.txt: cannot read"),
            std::string::npos)
      << missing.status();
  auto directory = ReadTextInput(dir, "--prompt-file");
  EXPECT_FALSE(directory.ok());
  testing::WriteFile(dir + "/empty.txt", "\n");
  auto empty = ReadTextInput(dir + "/empty.txt", "--prompt-file");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("is empty"), std::string::npos);
}

TEST(CliCommonTest, DurationsReadLikeAPerson) {
  EXPECT_EQ(FormatDuration(0.4), "0 s");
  EXPECT_EQ(FormatDuration(42), "42 s");
  EXPECT_EQ(FormatDuration(185), "3 min 05 s");
  EXPECT_EQ(FormatDuration(2 * 3600 + 7 * 60 + 3), "2 h 07 min");
  EXPECT_EQ(FormatDuration(-1), "?");
}

// Runs `updates` through a Progress writing to a temporary file with a fake clock that advances
// `step_s` per update; returns what it wrote.
std::string ProgressOutput(bool terminal, int total, double step_s) {
  std::FILE* f = std::tmpfile();
  double now = 0;
  {
    Progress::Options o;
    o.terminal = terminal;
    o.out = f;
    o.now = [&] { return now; };
    Progress p("quantize", total, "layers", o);
    for (int done = 1; done <= total; ++done) {
      now += step_s;
      p.Update(done);
    }
  }
  std::string out(static_cast<size_t>(std::ftell(f)), '\0');
  std::rewind(f);
  EXPECT_EQ(std::fread(out.data(), 1, out.size(), f), out.size());
  std::fclose(f);
  return out;
}

TEST(CliCommonTest, ProgressInALogIsOneLinePerTenPercent) {
  const std::string log = ProgressOutput(/*terminal=*/false, 1000, 0.01);
  EXPECT_EQ(log.find('\r'), std::string::npos) << "no carriage returns in a log";
  const size_t lines = std::count(log.begin(), log.end(), '\n');
  EXPECT_GE(lines, 10u);
  EXPECT_LE(lines, 12u) << log;
  EXPECT_NE(log.find("quantize: 1/1000 layers (0%)"), std::string::npos) << log;
  EXPECT_NE(log.find("quantize: 500/1000 layers (50%)  100 layers/s  ETA 5 s"), std::string::npos)
      << log;
  EXPECT_NE(log.find("quantize: 1000/1000 layers (100%)  100 layers/s  in 10 s\n"),
            std::string::npos)
      << log;
  // Slow work: a line at least every 30 s even between 10% steps.
  const std::string slow = ProgressOutput(/*terminal=*/false, 100, 20);
  EXPECT_GE(std::count(slow.begin(), slow.end(), '\n'), 45);
}

TEST(CliCommonTest, ProgressOnATerminalRedrawsOneLine) {
  const std::string tty = ProgressOutput(/*terminal=*/true, 1000, 0.01);
  EXPECT_EQ(std::count(tty.begin(), tty.end(), '\n'), 1) << "one line, ended at the end";
  EXPECT_GE(std::count(tty.begin(), tty.end(), '\r'), 50) << "redrawn about 10 times a second";
  EXPECT_LE(std::count(tty.begin(), tty.end(), '\r'), 120);
  EXPECT_EQ(tty.back(), '\n');
}

}  // namespace
}  // namespace pmpd::cli
