// Runs the real pmpd-generate binary: exit codes, messages on bad input (never a crash), --json.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "models/chat_template.h"
#include "models/llama_config.h"
#include "models/random_llama.h"
#include "models/tokenizer.h"
#include "tests/test_util.h"

namespace pmpd {
namespace {

using pmpd::testing::BinaryPath;
using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::RunResult;
using pmpd::testing::SharedPath;
using pmpd::testing::WriteFile;

RunResult RunGenerate(const std::string& args) {
  return pmpd::testing::RunBinary("cli/pmpd-generate", args);
}

// A tiny model directory with our demo tokenizer and a short context.
std::string TinyModelDir(int context) {
  const std::string dir = MakeTempDir("cli_model");
  int vocab = 0;
  EXPECT_TRUE(models::WriteTinyTokenizer(dir, &vocab).ok());
  models::LlamaConfig c = models::TinyDemoConfig(vocab);
  c.max_position_embeddings = context;
  EXPECT_TRUE(models::WriteRandomLlama(dir, c, 3).ok());
  return dir;
}

void ExpectCleanFailure(const RunResult& r, const std::string& needle) {
  pmpd::testing::ExpectCleanFailure(r, "pmpd-generate", needle);
}

TEST(PmpdGenerateCliTest, HelpExplainsEveryFlag) {
  const RunResult r = RunGenerate("--help");
  EXPECT_EQ(r.exit_code, 0) << "issue 16: --help exited 1";
  for (const char* flag :
       {"--model", "--prompt", "--prompt-file", "--max-new-tokens", "--temperature", "--top-k",
        "--top-p", "--seed", "--json", "--tokenizer", "--force"}) {
    EXPECT_NE(r.out.find(std::string("\n  ") + flag + " "), std::string::npos)
        << flag << " missing from --help:\n"
        << r.out;
  }
}

// --prompt-file and --prompt - read the prompt from a file or stdin (issue 16: "-" was the
// prompt), without Abseil's "Did you really mean" warning; one trailing newline is dropped.
TEST(PmpdGenerateCliTest, PromptFromAFileOrStdin) {
  const std::string dir = TinyModelDir(64);
  const std::string args = absl::StrCat("--model ", dir, " --max-new-tokens 2 --json ");
  const RunResult plain = RunGenerate(args + "--prompt 'Once upon'");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto want = nlohmann::json::parse(plain.out).at("prompt_ids");
  WriteFile(dir + "/prompt.txt", "Once upon\n");
  const RunResult file = RunGenerate(args + "--prompt-file " + dir + "/prompt.txt");
  ASSERT_EQ(file.exit_code, 0) << file.err;
  EXPECT_EQ(nlohmann::json::parse(file.out).at("prompt_ids"), want);
  EXPECT_EQ(nlohmann::json::parse(file.out).at("prompt"), "Once upon");
  for (const char* flag : {"--prompt -", "--prompt=-", "--prompt-file -"}) {
    SCOPED_TRACE(flag);
    const RunResult in = RunGenerate(args + flag + std::string(" < ") + dir + "/prompt.txt");
    ASSERT_EQ(in.exit_code, 0) << in.err;
    EXPECT_EQ(nlohmann::json::parse(in.out).at("prompt_ids"), want);
    EXPECT_EQ(in.err.find("Did you really mean"), std::string::npos) << in.err;
  }
  ExpectCleanFailure(RunGenerate(args + "--prompt-file " + dir + "/missing.txt"),
                     "--prompt-file " + dir + "/missing.txt: cannot read: No such file");
  ExpectCleanFailure(RunGenerate(args + "--prompt - < /dev/null"), "--prompt stdin is empty");
  const RunResult both = RunGenerate(args + "--prompt hi --prompt-file " + dir + "/prompt.txt");
  ExpectCleanFailure(both, "--prompt and --prompt-file exclude each other");
  EXPECT_EQ(both.exit_code, 2);
}

// Colours: a palette without white (97, 37) or bright yellow (93), which vanish on light
// backgrounds; NO_COLOR turns --color auto off on a terminal (no-color.org) and leaves --color
// always alone. `script` gives the tool a terminal for auto.
TEST(PmpdGenerateCliTest, ColorsSuitAnyBackgroundAndHonourNoColor) {
  PMPD_REQUIRE_SHARED("models/stories260K/config.json");
  const std::string dir =
      pmpd::testing::QuantizeForTest("color_model", SharedPath("models/stories260K"), 2, 8);
  const std::string args =
      absl::StrCat("--model ", dir,
                   " --prompt 'Once upon' --max-new-tokens 14 --ignore-eos --precisions "
                   "8,7,6,5,4,3,2 --switch-steps 2,4,6,8,10,12");
  const RunResult always = RunGenerate(args + " --color always");
  ASSERT_EQ(always.exit_code, 0) << always.err;
  for (const char* bad : {"\033[97m", "\033[37m", "\033[93m", "\033[1;97m"}) {
    EXPECT_EQ(always.out.find(bad), std::string::npos) << "unreadable on a light background";
    EXPECT_EQ(always.err.find(bad), std::string::npos) << "the legend too";
  }
  int colours = 0;
  for (const char* c : {"\033[38;5;32m", "\033[38;5;30m", "\033[38;5;98m", "\033[38;5;28m",
                        "\033[38;5;166m", "\033[38;5;133m", "\033[38;5;160m"}) {
    colours += always.out.find(c) != std::string::npos;
  }
  EXPECT_EQ(colours, 7) << "one colour per precision 8..2:\n" << always.out;
  const RunResult forced =
      pmpd::testing::RunBinaryWithEnv("NO_COLOR=1", "cli/pmpd-generate", args + " --color always");
  EXPECT_NE(forced.out.find("\033[38;5;"), std::string::npos) << "--color always still colours";
  const RunResult piped = RunGenerate(args);
  EXPECT_EQ(piped.out.find('\033'), std::string::npos) << "auto: stdout is not a terminal";
  if (std::system("command -v script >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "no `script` (util-linux) to give the tool a terminal";
  }
  auto on_terminal = [&](const std::string& env) {
    // env -i: only what is named here (no NO_COLOR from the caller); script -e: the tool's status.
    return pmpd::testing::RunBinaryWithEnv(
        absl::StrCat("env -i PATH=/usr/bin:/bin ", env, " script -qec \""), "cli/pmpd-generate",
        args + "\" /dev/null </dev/null");
  };
  const RunResult tty = on_terminal("TERM=xterm");
  ASSERT_EQ(tty.exit_code, 0) << tty.err;
  EXPECT_NE(tty.out.find("\033[38;5;"), std::string::npos) << "auto colours a terminal";
  const RunResult no_color = on_terminal("TERM=xterm NO_COLOR=1");
  ASSERT_EQ(no_color.exit_code, 0) << no_color.err;
  EXPECT_NE(no_color.out.find("Once upon"), std::string::npos) << no_color.out;
  EXPECT_EQ(no_color.out.find("\033[38;5;"), std::string::npos) << "NO_COLOR: no colour";
}

TEST(PmpdGenerateCliTest, JsonOutputMatchesReferenceAndStreaming) {
  PMPD_REQUIRE_SHARED("models/stories260K/reference_greedy.json");
  const auto ref =
      nlohmann::json::parse(ReadFile(SharedPath("models/stories260K/reference_greedy.json")));
  const auto& cs = ref.at("cases")[1];
  const std::string common =
      absl::StrCat("--model ", SharedPath("models/stories260K"), " --prompt '",
                   cs.at("prompt").get<std::string>(), "' --max-new-tokens 48 --temperature 0");
  const RunResult j = RunGenerate(common + " --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto out = nlohmann::json::parse(j.out);
  EXPECT_EQ(out.at("prompt_ids"), cs.at("input_ids"));
  EXPECT_EQ(out.at("new_ids"), cs.at("greedy_new_ids"));
  EXPECT_EQ(out.at("text").get<std::string>(), cs.at("greedy_text").get<std::string>());
  EXPECT_GT(out.at("decode_tokens_per_s").get<double>(), 0);
  EXPECT_GE(out.at("prefill_ms").get<double>(), 0);
  const RunResult s = RunGenerate(common);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  // Streamed text = the prompt, then the continuation as the full sequence decodes.
  auto tok = models::Tokenizer::Load(SharedPath("models/stories260K"));
  ASSERT_TRUE(tok.ok());
  std::vector<int> all = cs.at("input_ids").get<std::vector<int>>();
  for (int id : cs.at("greedy_new_ids")) all.push_back(id);
  EXPECT_EQ(s.out, (*tok)->Decode(all) + "\n");
}

// Flag values are taken as written: a value that looks like a dashed flag stays as it is (it used
// to be respelled "--my_dog_is_big"), and words outside any flag are an error, not silently
// dropped.
TEST(PmpdGenerateCliTest, FlagValuesAreLiteralAndStrayWordsAreRefused) {
  const std::string dir = TinyModelDir(64);
  const RunResult r = RunGenerate(
      absl::StrCat("--model ", dir, " --prompt --my-dog-is-big --max-new-tokens 1 --json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tok = models::Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ(nlohmann::json::parse(r.out).at("prompt_ids"), (*tok)->Encode("--my-dog-is-big", true));
  // An unquoted multi-word prompt: "upon", "a", "time" are stray words.
  const RunResult stray =
      RunGenerate(absl::StrCat("--model ", dir, " --prompt Once upon a time --max-new-tokens 1"));
  ExpectCleanFailure(stray, "pmpd-generate", "unexpected argument \"upon\"");
  EXPECT_EQ(stray.exit_code, 2);
  EXPECT_EQ(stray.out, "");
  // Issue 17 (scripts/redteam.py): an unknown flag gave Abseil's "ERROR: Unknown command line
  // flag" instead of the tool's one-line error.
  const RunResult unknown =
      RunGenerate(absl::StrCat("--model ", dir, " --prompt hi --frobnicate-it 1"));
  ExpectCleanFailure(unknown, "pmpd-generate", "unknown flag --frobnicate-it (see --help)");
  EXPECT_EQ(unknown.exit_code, 2);
  // Single-dash flags (Abseil takes -name too): checked and value-protected the same way.
  const RunResult single = RunGenerate(
      absl::StrCat("--model ", dir, " -prompt --my-dog-is-big -max-new-tokens 1 --json"));
  ASSERT_EQ(single.exit_code, 0) << single.err;
  EXPECT_EQ(nlohmann::json::parse(single.out).at("prompt_ids"),
            (*tok)->Encode("--my-dog-is-big", true));
  ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", dir, " --prompt hi -frobnicate 1")),
                     "pmpd-generate", "unknown flag -frobnicate (see --help)");
  // Negated bool flags still work.
  EXPECT_EQ(RunGenerate(absl::StrCat("--model ", dir, " --prompt hi --max-new-tokens 1 --nojson"))
                .exit_code,
            0);
}

TEST(PmpdGenerateCliTest, SamplingIsSeeded) {
  const std::string dir = TinyModelDir(128);
  const std::string args = absl::StrCat("--model ", dir,
                                        " --prompt 'Once upon' --max-new-tokens 20 --temperature 1 "
                                        "--top-k 50 --top-p 0.9 --json --ignore-eos --seed ");
  const RunResult a = RunGenerate(args + "1"), b = RunGenerate(args + "1"),
                  c = RunGenerate(args + "2");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out),
             jc = nlohmann::json::parse(c.out);
  EXPECT_EQ(ja.at("new_ids"), jb.at("new_ids"));
  EXPECT_NE(ja.at("new_ids"), jc.at("new_ids"));
  EXPECT_EQ(ja.at("new_ids").size(), 20u);
}

TEST(PmpdGenerateCliTest, BadInputFailsCleanly) {
  const std::string good = TinyModelDir(16);
  {
    SCOPED_TRACE("missing flags");
    ExpectCleanFailure(RunGenerate("--prompt hi"), "--model is required");
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", good)), "--prompt is required");
  }
  {
    SCOPED_TRACE("weights deeper than the config (issue 17: the extra layers were ignored)");
    const std::string shallow = TinyModelDir(16);
    const std::string config = ReadFile(shallow + "/config.json");
    const size_t at = config.find("\"num_hidden_layers\": 2");
    ASSERT_NE(at, std::string::npos) << config;
    WriteFile(shallow + "/config.json",
              config.substr(0, at) + "\"num_hidden_layers\": 1" + config.substr(at + 22));
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", shallow, " --prompt hi")),
                       "of layer 1, but the config says num_hidden_layers = 1");
  }
  {
    SCOPED_TRACE("schedule flags without a schedule (issue 17: silently ignored before)");
    for (const char* flag : {"--switch-steps 8", "--classifier /tmp", "--prefill-precision 4",
                             "--scheduler learned"}) {
      const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
      const auto r = RunGenerate(absl::StrCat("--model ", good, " --prompt hi ", flag));
      ExpectCleanFailure(r, name + " needs --precisions");
      EXPECT_EQ(r.out, "") << "refused before anything is printed";
    }
    ExpectCleanFailure(
        RunGenerate(absl::StrCat("--model ", good, " --prompt hi --precision 4 --precisions 4,3")),
        "exclude each other");
  }
  {
    SCOPED_TRACE("prompt longer than the context");
    std::string long_prompt;
    for (int i = 0; i < 40; ++i) long_prompt += "the cat sat on the mat ";
    const auto r = RunGenerate(absl::StrCat("--model ", good, " --prompt '", long_prompt, "'"));
    ExpectCleanFailure(r, "does not leave room in the model's context of 16");
    EXPECT_EQ(r.out, "") << "issue 17: refused before the prompt is echoed";
  }
  {
    SCOPED_TRACE("bad sampling and schedule flags (issue 17: checked after the prompt was echoed)");
    auto r = RunGenerate(absl::StrCat("--model ", good, " --prompt hi --top-p 2"));
    ExpectCleanFailure(r, "--top-p must be in (0, 1]");
    EXPECT_EQ(r.out, "");
    r = RunGenerate(absl::StrCat("--model ", good, " --prompt hi --precisions 4,3 --scheduler x"));
    ExpectCleanFailure(r, "--scheduler x: expected static or learned");
    EXPECT_EQ(r.out, "");
    r = RunGenerate(
        absl::StrCat("--model ", good, " --prompt hi --precisions 4,3 --switch-steps 4"));
    ExpectCleanFailure(r, "precision");
    EXPECT_EQ(r.out, "") << "a plain model has no precisions 4 and 3";
  }
  const std::string model_st = ReadFile(good + "/model.safetensors");
  const std::string config = ReadFile(good + "/config.json");
  auto variant = [&](const std::string& tag) {
    const std::string dir = MakeTempDir(tag);
    WriteFile(dir + "/config.json", config);
    WriteFile(dir + "/model.safetensors", model_st);
    WriteFile(dir + "/tokenizer.model", ReadFile(good + "/tokenizer.model"));
    return dir;
  };
  {
    SCOPED_TRACE("missing config");
    const std::string d = variant("noconf");
    std::remove((d + "/config.json").c_str());
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", d, " --prompt hi")),
                       d + "/config.json: missing");
  }
  {
    SCOPED_TRACE("malformed config");
    const std::string d = variant("badconf");
    WriteFile(d + "/config.json", "{\"hidden_size\": 64,");
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", d, " --prompt hi")),
                       "config.json: not valid JSON");
  }
  {
    SCOPED_TRACE("unsupported architecture");
    const std::string d = variant("arch");
    WriteFile(d + "/config.json", R"({"architectures": ["BertForMaskedLM"], "hidden_size": 64})");
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", d, " --prompt hi")),
                       "unsupported architecture \"BertForMaskedLM\"");
  }
  {
    SCOPED_TRACE("truncated safetensors");
    const std::string d = variant("trunc");
    WriteFile(d + "/model.safetensors", model_st.substr(0, model_st.size() / 2));
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", d, " --prompt hi")),
                       d + "/model.safetensors: invalid safetensors");
  }
  {
    SCOPED_TRACE("missing tokenizer");
    const std::string d = variant("notok");
    std::remove((d + "/tokenizer.model").c_str());
    ExpectCleanFailure(RunGenerate(absl::StrCat("--model ", d, " --prompt hi")),
                       d + "/tokenizer.model: missing tokenizer");
  }
  {
    SCOPED_TRACE("missing model directory");
    // Issue 16: this reported a missing tokenizer.
    ExpectCleanFailure(RunGenerate("--model /nonexistent/model --prompt hi"),
                       "--model /nonexistent/model: no such file or directory");
  }
}

TEST(PmpdGenerateCliTest, ChatAppliesATemplateOrFailsCleanly) {
  const std::string dir = TinyModelDir(512);  // our demo tokenizer: no chat template
  const std::string base = absl::StrCat("--model ", dir, " --prompt 'Once upon'");
  ExpectCleanFailure(RunGenerate(base + " --chat"),
                     "has no chat template; pass --chat-template NAME");
  ExpectCleanFailure(RunGenerate(base + " --chat --chat-template gemma"),
                     "unknown chat template \"gemma\"");
  ExpectCleanFailure(RunGenerate(base + " --system 'Be brief.'"),
                     "--system and --chat-template need --chat");

  // A named template applies to any model: its ids are the prompt, --json names it.
  const std::string chat =
      base + " --chat --chat-template vicuna --system 'Be brief.' --max-new-tokens 6";
  const RunResult j = RunGenerate(chat + " --json");
  ASSERT_EQ(j.exit_code, 0) << j.err;
  const auto out = nlohmann::json::parse(j.out);
  EXPECT_EQ(out.at("chat_template"), "vicuna");
  EXPECT_EQ(out.at("prompt"), "Once upon");
  auto tok = models::Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok());
  auto ids = models::ChatTemplate::FromName("vicuna")->Encode(
      **tok, {{"system", "Be brief."}, {"user", "Once upon"}},
      /*add_generation_prompt=*/true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(out.at("prompt_ids").get<std::vector<int>>(), *ids);
  // Streaming shows the user's message, not the template.
  const RunResult s = RunGenerate(chat);
  ASSERT_EQ(s.exit_code, 0) << s.err;
  EXPECT_EQ(s.out.rfind("Once upon\n", 0), 0u) << s.out;
  EXPECT_EQ(s.out.find("USER:"), std::string::npos) << s.out;
  EXPECT_EQ(RunGenerate(base + " --json").out.find("chat_template"), std::string::npos);
}

}  // namespace
}  // namespace pmpd
