#include "hpo/search_space.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace pmpd::hpo {
namespace {

using ::pmpd::testing::MakeTempDir;
using ::pmpd::testing::WriteFile;

// Issue 17 (scripts/redteam.py): a valid space followed by "\0garbage" was accepted (the JSON
// parser stops at the NUL).
TEST(SearchSpaceTest, AFileHoldingANulByteIsRefused) {
  const std::string path = MakeTempDir("hpo_space_nul") + "/space.json";
  WriteFile(path,
            std::string(R"({"params": [{"name": "x", "type": "float", "low": 0, "high": 1}]})") +
                std::string("\0garbage", 8));
  absl::StatusOr<SearchSpace> space = SearchSpace::FromFile(path);
  ASSERT_FALSE(space.ok());
  EXPECT_NE(space.status().message().find(path + ": a NUL byte at offset 65"), std::string::npos)
      << space.status();
}

TEST(SearchSpaceTest, ReadsEveryKindFromJsonAndWritesItBack) {
  const std::string dir = MakeTempDir("hpo_space");
  const std::string path = dir + "/space.json";
  WriteFile(path, R"({"params": [
    {"name": "lr", "type": "float", "low": 1e-5, "high": 0.1, "log": true},
    {"name": "dropout", "type": "float", "low": 0.0, "high": 0.5, "step": 0.05},
    {"name": "hidden", "type": "int", "low": 32, "high": 512, "step": 32},
    {"name": "layers", "type": "int", "low": 1, "high": 64, "log": true},
    {"name": "act", "type": "categorical", "choices": ["relu", "gelu"]},
    {"name": "bits", "type": "categorical", "choices": [2, 3, 4]}]})");
  absl::StatusOr<SearchSpace> space = SearchSpace::FromFile(path);
  ASSERT_TRUE(space.ok()) << space.status();
  ASSERT_EQ(space->size(), 6u);
  EXPECT_TRUE(space->param(0).log);
  EXPECT_EQ(space->param(1).step, 0.05);
  EXPECT_EQ(space->param(2).type, ParamType::kInt);
  EXPECT_EQ(space->param(2).step, 32.0);
  EXPECT_EQ(space->param(3).step, 1.0);
  EXPECT_EQ(space->param(5).choices[1], 3);
  absl::StatusOr<SearchSpace> again = SearchSpace::FromJson(space->ToJson());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->ToJson(), space->ToJson());

  // Values: the grid and the choices are checked, float grid values are snapped.
  EXPECT_EQ(*space->ValueFromJson(1, 0.15000000000000002), 0.05 * 3);
  EXPECT_FALSE(space->ValueFromJson(1, 0.12).ok());
  EXPECT_FALSE(space->ValueFromJson(2, 40).ok());
  EXPECT_FALSE(space->ValueFromJson(2, 544).ok());
  EXPECT_EQ(*space->ValueFromJson(4, "gelu"), 1.0);
  EXPECT_EQ(*space->ValueFromJson(5, 4), 2.0);
  const absl::Status bad_choice = space->ValueFromJson(4, "tanh").status();
  EXPECT_NE(bad_choice.message().find("\"act\""), absl::string_view::npos) << bad_choice;
  EXPECT_EQ(space->ValueToJson(5, 2.0), 4);
  EXPECT_EQ(space->ValueToJson(4, 0.0), "relu");
}

TEST(SearchSpaceTest, MalformedFilesNameTheFileAndTheProblem) {
  const std::string dir = MakeTempDir("hpo_space_bad");
  const struct {
    const char* json;
    const char* needle;
  } cases[] = {
      {R"({"params": [{"name": "x", "type": "float", "low": 1, "high": 1}]})",
       "params[0] (\"x\"): low (1) must be < high (1)"},
      {R"({"params": [{"name": "x", "type": "float", "low": 0, "high": 1, "log": true}]})",
       "(\"x\"): log scale needs low > 0"},
      {R"({"params": [{"name": "x", "type": "normal", "low": 0, "high": 1}]})",
       "unknown type \"normal\""},
      {R"({"params": [{"name": "x", "type": "int", "low": 0}]})",
       "(\"x\"): missing field \"high\""},
      {R"({"params": [{"name": "c", "type": "categorical", "choices": []}]})",
       "(\"c\"): choices is empty"},
      {R"({"params": [{"name": "c", "type": "categorical", "choices": ["a", "a"]}]})",
       "duplicate choice \"a\""},
      {R"({"params": [{"name": "x", "type": "int", "low": 0, "high": 3},
                      {"name": "x", "type": "float", "low": 0, "high": 3}]})",
       "params[1] (\"x\"): duplicate name"},
      {R"({"params": [{"name": "x", "type": "float", "lo": 0, "high": 3}]})",
       "missing field \"low\""},
      {R"({"params": [{"name": "x", "type": "float", "low": 0, "high": 3, "stpe": 1}]})",
       "unknown field \"stpe\""},
      {R"({"params": [{"name": "x", "type": "int", "low": 0.5, "high": 3}]})",
       "int bounds must be integers"},
      {R"({"params": [{"name": "x", "type": "int", "low": 0, "high": 10, "step": 3}]})",
       "must be a multiple of step (3)"},
      {R"({"params": [{"name": "x", "type": "float", "low": 1, "high": 3, "step": 0.5, "log": true}]})",
       "log scale and step cannot be combined"},
      {R"({"params": [{"name": "x y", "type": "float", "low": 1, "high": 3}]})",
       "name must be non-empty"},
      {R"({"params": []})", "the space has no parameters"},
      {R"({"parameters": []})", "expected an object {\"params\": [...]}"},
      {R"({"params": [{"name": "x", "type": "float", "low": 0, "high": 1},])", "not valid JSON"},
      // Issue 17: a number that overflows a double aborted pmpd-hypertune (only parse errors
      // were caught).
      {R"({"params": [{"name": "x", "type": "float", "low": 0, "high": 1e999}]})",
       "not valid JSON: [json.exception.out_of_range.406] number overflow"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string path = dir + "/space" + std::to_string(i++) + ".json";
    WriteFile(path, c.json);
    absl::StatusOr<SearchSpace> space = SearchSpace::FromFile(path);
    ASSERT_FALSE(space.ok()) << c.json;
    const std::string message(space.status().message());
    EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
    EXPECT_NE(message.find(c.needle), std::string::npos)
        << "expected \"" << c.needle << "\" in: " << message;
  }
  // Built in code: the same rules; choices must be UTF-8 since the journal stores them as JSON.
  absl::StatusOr<SearchSpace> bytes =
      SearchSpace::FromParams({ParamSpec::Categorical("c", {std::string("\xff\xfe")})}, "code");
  EXPECT_EQ(bytes.status().message(), "code: params[0] (\"c\"): choices[0] is not valid UTF-8");
  absl::StatusOr<SearchSpace> missing = SearchSpace::FromFile(dir + "/nope.json");
  EXPECT_NE(missing.status().message().find("nope.json: cannot open"), absl::string_view::npos);
}

}  // namespace
}  // namespace pmpd::hpo
