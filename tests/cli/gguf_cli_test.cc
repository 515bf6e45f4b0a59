// The tools take a GGUF file wherever they take a Hugging Face model directory: pmpd-generate on a
// tiny GGUF Llama, pmpd-quantize from it, and clean failures (never a crash) on broken GGUF files.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "tests/models/gguf_writer.h"
#include "tests/test_util.h"

namespace pmpd {
namespace {

using pmpd::testing::ExpectCleanFailure;
using pmpd::testing::MakeTempDir;
using pmpd::testing::RunBinary;
using pmpd::testing::RunResult;
using pmpd::testing::TinyLlama;
using pmpd::testing::WriteFile;

std::string WriteTinyGguf(const std::string& tag, const std::string& bytes) {
  const std::string path = MakeTempDir(tag) + "/tiny.gguf";
  WriteFile(path, bytes);
  return path;
}

TEST(GgufCliTest, BrokenGgufFilesFailCleanly) {
  TinyLlama tiny;
  const auto built = tiny.w.Build();
  std::string bad_magic = built.bytes;
  bad_magic[0] = 'X';
  const std::string magic_path = WriteTinyGguf("gguf_cli_magic", bad_magic);
  const std::string cut_path =
      WriteTinyGguf("gguf_cli_cut", built.bytes.substr(0, built.infos_begin + 10));
  tiny.w.version = 1;
  const std::string v1_path = WriteTinyGguf("gguf_cli_v1", tiny.w.Build().bytes);
  const std::pair<std::string, std::string> cases[] = {
      {magic_path, ": invalid GGUF file: bad magic"},
      {cut_path, ": invalid GGUF file: "},
      {v1_path, ": invalid GGUF file: GGUF version 1 is not supported"},
  };
  for (const auto& [path, needle] : cases) {
    SCOPED_TRACE(path);
    const RunResult r =
        RunBinary("cli/pmpd-generate", absl::StrCat("--model ", path, " --prompt hi"));
    ExpectCleanFailure(r, "pmpd-generate", path + needle);
    if (path == cut_path) {
      EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
    }
  }
  const RunResult q =
      RunBinary("cli/pmpd-quantize",
                absl::StrCat("--model ", magic_path, " --out ", MakeTempDir("gguf_cli_q"), "/out"));
  ExpectCleanFailure(q, "pmpd-quantize", magic_path + ": invalid GGUF file: bad magic");
}

TEST(GgufCliTest, GenerateAndQuantizeFromAGgufFile) {
  TinyLlama tiny;
  const std::string path = WriteTinyGguf("gguf_cli_ok", tiny.w.Build().bytes);
  const std::string prompt = " --prompt 'ab c' --max-new-tokens 4 --json";
  const RunResult g = RunBinary("cli/pmpd-generate", absl::StrCat("--model ", path, prompt));
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const auto j = nlohmann::json::parse(g.out);
  // add_bos_token is true in the file: <|im_start|> (1), then "ab" (5), "Ġ" (6), "c" (8).
  EXPECT_EQ(j.at("prompt_ids"), nlohmann::json({1, 5, 6, 8}));
  EXPECT_EQ(j.at("new_ids").size(), 4u);

  // Quantized from the GGUF: config.json and Hugging Face tokenizer files are written beside the
  // weights, so the output directory works alone and tokenizes the same.
  const std::string out = MakeTempDir("gguf_cli_q_ok") + "/ap";
  const RunResult q = RunBinary(
      "cli/pmpd-quantize",
      absl::StrCat("--model ", path, " --out ", out, " --seed-precision 2 --parent-precision 3"));
  ASSERT_EQ(q.exit_code, 0) << q.err;
  const RunResult g2 = RunBinary("cli/pmpd-generate", absl::StrCat("--model ", out, prompt));
  ASSERT_EQ(g2.exit_code, 0) << g2.err;
  EXPECT_EQ(nlohmann::json::parse(g2.out).at("prompt_ids"), j.at("prompt_ids"));
}

}  // namespace
}  // namespace pmpd
