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
  EXPECT_FALSE(r.crashed);
  const std::string all = r.out + r.err;
  for (const char* flag : {"--model", "--prompt", "--max_new_tokens", "--temperature", "--top_k",
                           "--top_p", "--seed", "--json", "--tokenizer"}) {
    EXPECT_NE(all.find(flag), std::string::npos) << flag << " missing from --help:\n" << all;
  }
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
    r = RunGenerate(absl::StrCat("--model ", good, " --prompt hi --precisions 4,3"));
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
    ExpectCleanFailure(RunGenerate("--model /nonexistent/model --prompt hi"),
                       "/nonexistent/model/tokenizer.model");
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
