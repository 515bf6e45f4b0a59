#include "models/tokenizer.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>
#include <random>

#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::SharedPath;

const char* kTokenizers[] = {"stories260K", "llama2-tokenizer"};

std::unique_ptr<Tokenizer> LoadOrDie(const std::string& name) {
  auto t = Tokenizer::Load(SharedPath("models/" + name + "/tokenizer.model"));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

// The first `n` documents' text of the shared C4 shard (gzip JSON lines).
std::vector<std::string> C4Texts(size_t n) {
  std::vector<std::string> out;
  gzFile f =
      gzopen(SharedPath("data/c4/c4-validation.00000-of-00008.first800.json.gz").c_str(), "rb");
  if (f == nullptr) return out;
  std::string line;
  char buf[1 << 16];
  int got;
  std::string pending;
  while (out.size() < n && (got = gzread(f, buf, sizeof(buf))) > 0) {
    pending.append(buf, got);
    size_t pos;
    while (out.size() < n && (pos = pending.find('\n')) != std::string::npos) {
      auto j = nlohmann::json::parse(pending.substr(0, pos));
      out.push_back(j.at("text").get<std::string>());
      pending.erase(0, pos + 1);
    }
  }
  gzclose(f);
  return out;
}

// sentencepiece's remove_extra_whitespaces for an identity normalizer: runs of ' ' collapse to one,
// leading and trailing ' ' go.
std::string CollapseSpaces(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == ' ' && (out.empty() || out.back() == ' ')) continue;
    out.push_back(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

TEST(TokenizerTest, IdsMatchGoldenPieces) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  const auto golden = nlohmann::json::parse(
      pmpd::testing::ReadFile(pmpd::testing::SourcePath("tests/golden/tokenizer_ids.json")));
  for (const char* name : kTokenizers) {
    auto tok = LoadOrDie(name);
    ASSERT_NE(tok, nullptr);
    const auto& cases = golden.at("tokenizers").at(name);
    ASSERT_GE(cases.size(), 10u);
    for (const auto& c : cases) {
      const std::string text = c.at("text");
      const auto expected = c.at("ids").get<std::vector<int>>();
      EXPECT_EQ(tok->Encode(text, /*add_bos=*/false), expected) << name << ": " << text;
      std::vector<int> with_bos = {tok->bos_id()};
      with_bos.insert(with_bos.end(), expected.begin(), expected.end());
      EXPECT_EQ(tok->Encode(text, /*add_bos=*/true), with_bos);
      EXPECT_EQ(tok->Decode(expected), c.at("decoded").get<std::string>()) << name << ": " << text;
      const auto pieces = c.at("pieces").get<std::vector<std::string>>();
      for (size_t i = 0; i < expected.size(); ++i)
        EXPECT_EQ(tok->IdToPiece(expected[i]), pieces[i]);
    }
  }
}

TEST(TokenizerTest, LlamaConventions) {
  PMPD_REQUIRE_SHARED("models/stories260K/tokenizer.model");
  auto tok = LoadOrDie("stories260K");
  ASSERT_NE(tok, nullptr);
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->vocab_size(), 512);
  // The ids Hugging Face's LlamaTokenizer gave for the reference prompt.
  EXPECT_EQ(tok->Encode("Once upon a time", true), std::vector<int>({1, 403, 407, 261, 378}));
}

TEST(TokenizerTest, C4RoundTripsWithBothTokenizers) {
  PMPD_REQUIRE_SHARED("data/c4/c4-validation.00000-of-00008.first800.json.gz");
  const auto docs = C4Texts(200);
  ASSERT_EQ(docs.size(), 200u);
  for (const char* name : kTokenizers) {
    auto tok = LoadOrDie(name);
    ASSERT_NE(tok, nullptr);
    // llama2 keeps whitespace as is; stories260K's model was trained with remove_extra_whitespaces.
    const bool collapses = std::string(name) == "stories260K";
    size_t tokens = 0, byte_pieces = 0;
    for (size_t d = 0; d < docs.size(); ++d) {
      const auto ids = tok->Encode(docs[d], false);
      tokens += ids.size();
      for (int id : ids) byte_pieces += tok->IdToPiece(id).rfind("<0x", 0) == 0;
      const std::string expected = collapses ? CollapseSpaces(docs[d]) : docs[d];
      ASSERT_EQ(tok->Decode(ids), expected) << name << " document " << d;
    }
    EXPECT_GT(tokens, docs.size() * 50) << name;
    RecordProperty(std::string(name) + "_tokens", static_cast<int>(tokens));
    RecordProperty(std::string(name) + "_byte_pieces", static_cast<int>(byte_pieces));
  }
}

TEST(TokenizerTest, IncrementalDetokenizationEqualsFullDecode) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  const auto docs = C4Texts(20);
  ASSERT_FALSE(docs.empty());
  for (const char* name : kTokenizers) {
    auto tok = LoadOrDie(name);
    ASSERT_NE(tok, nullptr);
    for (const auto& doc : docs) {
      std::vector<int> ids = tok->Encode(doc, true);
      const size_t split = std::min<size_t>(ids.size() / 3 + 1, ids.size());
      std::vector<int> prompt(ids.begin(), ids.begin() + split);
      IncrementalDetokenizer detok(*tok, prompt);
      std::string streamed = tok->Decode(prompt);
      for (size_t i = split; i < ids.size(); ++i) streamed += detok.Push(ids[i]);
      EXPECT_EQ(streamed, tok->Decode(ids)) << name;
    }
    // Byte-fallback pieces of one multi-byte character: nothing is shown until it is complete.
    std::vector<int> emoji = tok->Encode("🦄", false);
    std::vector<int> ctx = {tok->bos_id()};
    IncrementalDetokenizer detok(*tok, ctx);
    std::string streamed;
    for (size_t i = 0; i < emoji.size(); ++i) {
      const std::string piece = detok.Push(emoji[i]);
      if (i + 1 < emoji.size()) {
        EXPECT_TRUE(piece.find("\xEF\xBF\xBD") == std::string::npos) << name;
      }
      streamed += piece;
    }
    EXPECT_EQ(streamed, tok->Decode(emoji)) << name;
  }
}

TEST(TokenizerTest, SentencePieceDirectoryCarriesItsChatTemplate) {
  PMPD_REQUIRE_SHARED("models/llama2-tokenizer/tokenizer.model");
  // Llama-2-chat / Vicuna directories ship tokenizer.model with a tokenizer_config.json beside it.
  const std::string dir = pmpd::testing::MakeTempDir("tok_chat");
  pmpd::testing::WriteFile(
      dir + "/tokenizer.model",
      pmpd::testing::ReadFile(SharedPath("models/llama2-tokenizer/tokenizer.model")));
  pmpd::testing::WriteFile(dir + "/tokenizer_config.json",
                           R"({"chat_template": "[INST] {{ m }} [/INST]", "bos_token": "<s>"})");
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_FALSE((*tok)->is_byte_level_bpe());
  EXPECT_EQ((*tok)->path(), dir + "/tokenizer.model");
  EXPECT_EQ((*tok)->chat_template(), "[INST] {{ m }} [/INST]");
  EXPECT_EQ((*tok)->TokenId("</s>"), 2);
  EXPECT_EQ((*tok)->TokenId("<s>"), 1);
  EXPECT_EQ((*tok)->TokenId("no such piece"), -1);
  EXPECT_EQ((*tok)->Encode("Hello", true), LoadOrDie("llama2-tokenizer")->Encode("Hello", true));
  // No tokenizer_config.json: no template.
  EXPECT_EQ(LoadOrDie("llama2-tokenizer")->chat_template(), "");
}

TEST(TokenizerTest, MissingOrInvalidTokenizerIsAClearError) {
  const std::string dir = pmpd::testing::MakeTempDir("tok");
  auto missing = Tokenizer::Load(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(dir + "/tokenizer.model"), std::string::npos)
      << missing.status();
  EXPECT_NE(missing.status().message().find("missing tokenizer"), std::string::npos);
  pmpd::testing::WriteFile(dir + "/tokenizer.model", "this is not a protobuf");
  auto bad = Tokenizer::Load(dir);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("not a valid sentencepiece model"), std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace pmpd::models
