// What every tool does with words it does not take, before it reads anything: the same one-line
// error and exit code 2 (issue 17: stray words were ignored by generate, train, quantize and
// hypertune, e.g. an unquoted --prompt Once upon a time used "Once"; an unknown flag printed
// Abseil's own message).
#include <gtest/gtest.h>

#include <string>

#include "tests/test_util.h"

namespace pmpd {
namespace {

const char* const kTools[] = {"pmpd-generate", "pmpd-quantize",  "pmpd-perplexity", "pmpd-gen-data",
                              "pmpd-train",    "pmpd-hypertune", "pmpd-eval"};

TEST(EveryToolCliTest, RefusesStrayWordsAndUnknownFlags) {
  for (const char* tool : kTools) {
    SCOPED_TRACE(tool);
    const testing::RunResult stray = testing::RunBinary(std::string("cli/") + tool, "stray words");
    // pmpd-gen-data takes a subcommand (merge) as its first word: "stray" is an unknown one.
    testing::ExpectCleanFailure(stray, tool, "\"stray\"");
    EXPECT_EQ(stray.exit_code, 2) << stray.err;
    const testing::RunResult unknown =
        testing::RunBinary(std::string("cli/") + tool, "--frobnicate-it 1");
    testing::ExpectCleanFailure(unknown, tool, "unknown flag --frobnicate-it (see --help)");
    EXPECT_EQ(unknown.exit_code, 2) << unknown.err;
    EXPECT_EQ(unknown.err.find("ERROR: Unknown command line flag"), std::string::npos);
  }
}

}  // namespace
}  // namespace pmpd
