#include "models/bpe_tokenizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_join.h"
#include "models/gguf.h"
#include "models/gguf_model.h"
#include "models/tokenizer.h"
#include "tests/models/byte_alphabet.h"
#include "tests/test_util.h"

namespace pmpd::models {
namespace {

using pmpd::testing::MakeTempDir;
using pmpd::testing::ReadFile;
using pmpd::testing::SmolLM2Path;
using pmpd::testing::SourcePath;
using pmpd::testing::WriteFile;

// --- helpers ---------------------------------------------------------------------------------

using pmpd::testing::ByteSymbol;

// All 256 byte symbols (ids 0..255 in byte order), then the results of `merges` in order, then
// `added` (special when the flag says so).
BpeVocab TinyVocab(const std::vector<std::pair<std::string, std::string>>& merges,
                   const std::vector<std::pair<std::string, bool>>& added = {},
                   std::vector<std::string> regexes = {}) {
  BpeVocab v;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(ByteSymbol(static_cast<unsigned char>(b)));
  for (const auto& [a, b] : merges) {
    v.merges.emplace_back(a, b);
    if (std::find(v.tokens.begin(), v.tokens.end(), a + b) == v.tokens.end())
      v.tokens.push_back(a + b);
  }
  for (const auto& [text, special] : added) {
    v.added_ids.push_back(static_cast<int>(v.tokens.size()));
    v.added_special.push_back(special);
    v.tokens.push_back(text);
  }
  v.split_regexes = std::move(regexes);
  return v;
}

std::unique_ptr<BpeTokenizer> Make(BpeVocab v) {
  auto t = BpeTokenizer::Create(std::move(v), "tiny");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

// The token strings of `ids` (byte-alphabet spelling), for readable expectations.
std::vector<std::string> Pieces(const BpeTokenizer& t, const std::vector<int>& ids) {
  std::vector<std::string> out;
  for (int id : ids) out.push_back(t.vocab().tokens[id]);
  return out;
}

std::vector<std::string> Gpt2() { return *PreTokenizerRegexes("gpt2"); }

bool IsCompleteUtf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const int n = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  return out;
}

std::string JoinIds(const std::vector<int>& ids) { return "[" + absl::StrJoin(ids, ", ") + "]"; }

// --- tiny vocabularies: the algorithm ----------------------------------------------------------

TEST(BpeTokenizerTest, MergesApplyByRankNotByPosition) {
  // "abc": rank 0 is "b c", so "a b" (rank 1) never gets its chance.
  auto t = Make(TinyVocab({{"b", "c"}, {"a", "b"}}));
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(Pieces(*t, t->Encode("abc", false)), std::vector<std::string>({"a", "bc"}));
  auto u = Make(TinyVocab({{"a", "b"}, {"b", "c"}}));
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(Pieces(*u, u->Encode("abc", false)), std::vector<std::string>({"ab", "c"}));
  // Ties at one rank go left to right, and a new pair waits for its own rank: "aaaaa" -> aa aa a ->
  // aa aaa (what tokenizers 0.23 gives for this vocabulary).
  auto w = Make(
      TinyVocab({{"a", "a"}, {"aa", "a"}, {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}}));
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(Pieces(*w, w->Encode("aaaaa", false)), std::vector<std::string>({"aa", "aaa"}));
  EXPECT_EQ(Pieces(*w, w->Encode("hello", false)), std::vector<std::string>({"hello"}));
  EXPECT_EQ(w->Decode(w->Encode("hello aaaaa", false)), "hello aaaaa");
}

TEST(BpeTokenizerTest, PreTokenizerPiecesAreIsolatedAndMergedSeparately) {
  const std::string sp = ByteSymbol(' ');  // "Ġ"
  auto t = Make(TinyVocab({{sp, sp}, {sp, "b"}, {"1", "2"}}, {}, Gpt2()));
  ASSERT_NE(t, nullptr);
  // "a  b": pieces "a", " ", " b" (\s+(?!\S) leaves the last space to " ?\p{L}+"): no "ĠĠ".
  EXPECT_EQ(Pieces(*t, t->Encode("a  b", false)), std::vector<std::string>({"a", sp, sp + "b"}));
  // Trailing spaces are one piece.
  EXPECT_EQ(Pieces(*t, t->Encode("a  ", false)), std::vector<std::string>({"a", sp + sp}));
  // The text between matches is a piece too: gpt2 matches everything, so build a regex that
  // doesn't.
  auto u = Make(TinyVocab({{"x", "y"}, {"y", "z"}}, {}, {"y"}));
  ASSERT_NE(u, nullptr);
  EXPECT_EQ(Pieces(*u, u->Encode("xyz", false)), std::vector<std::string>({"x", "y", "z"}));
  // Digits: gpt2 keeps " 12" one piece; smollm isolates each digit first.
  EXPECT_EQ(Pieces(*t, t->Encode("12", false)), std::vector<std::string>({"12"}));
  auto d = Make(TinyVocab({{"1", "2"}}, {}, *PreTokenizerRegexes("smollm")));
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(Pieces(*d, d->Encode("x12", false)), std::vector<std::string>({"x", "1", "2"}));
}

TEST(BpeTokenizerTest, AddedTokensAreLeftmostLongestAndNeverSplit) {
  auto t = Make(TinyVocab(
      {{"<", "|"}}, {{"<|x|>", true}, {"<|x|>y", true}, {"ab", false}, {"bcd", false}}, Gpt2()));
  ASSERT_NE(t, nullptr);
  const int x = t->TokenId("<|x|>"), xy = t->TokenId("<|x|>y"), ab = t->TokenId("ab");
  EXPECT_EQ(t->Encode("<|x|>yz", false).front(), xy);
  EXPECT_EQ(t->Encode("<|x|>z", false).front(), x);
  // Leftmost wins over longer: "ab" at 0, then "cd" as ordinary text.
  EXPECT_EQ(Pieces(*t, t->Encode("abcd", false)), std::vector<std::string>({"ab", "c", "d"}));
  EXPECT_EQ(t->Encode("zab", false).back(), ab);
  // A partial added token is ordinary text.
  EXPECT_EQ(Pieces(*t, t->Encode("<|x", false)), std::vector<std::string>({"<|", "x"}));
  // Added tokens decode to their text; skip_special drops special ones only.
  const std::vector<int> ids = t->Encode("q<|x|>ab", false);
  EXPECT_EQ(t->Decode(ids), "q<|x|>ab");
  EXPECT_EQ(t->Decode(ids, /*skip_special=*/true), "qab");
  // Special tokens are matched before the others (HF: non-normalized, then normalized tokens).
  auto s = Make(TinyVocab({}, {{"bc", true}, {"abc", false}}));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(Pieces(*s, s->Encode("abcd", false)), std::vector<std::string>({"a", "bc", "d"}));
}

TEST(BpeTokenizerTest, BosOnlyWhenTheVocabularyAsksForIt) {
  BpeVocab v = TinyVocab({}, {{"<s>", true}});
  v.bos_id = v.added_ids[0];
  auto no = Make(v);
  ASSERT_NE(no, nullptr);
  EXPECT_EQ(no->Encode("a", true), std::vector<int>({'a'}));
  v.add_bos = true;
  auto yes = Make(v);
  ASSERT_NE(yes, nullptr);
  EXPECT_EQ(yes->Encode("a", true), std::vector<int>({v.bos_id, 'a'}));
  EXPECT_EQ(yes->Encode("a", false), std::vector<int>({'a'}));
  EXPECT_TRUE(yes->Encode("", false).empty());
}

TEST(BpeTokenizerTest, InvalidUtf8BecomesReplacementCharacters) {
  auto t = Make(TinyVocab({}, {}, *PreTokenizerRegexes("llama3")));
  ASSERT_NE(t, nullptr);
  // Maximal ill-formed subparts: FF -> 1, E2 82 (truncated) -> 1, ED A0 80 (surrogate) -> 3.
  const std::string bad = "a\xFF b\xE2\x82 c\xED\xA0\x80";
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(t->Decode(t->Encode(bad, false)), "a" + r + " b" + r + " c" + r + r + r);
  for (const char* s : {"\x80", "\xC0", "\xF4\x90\x80\x80", "\xF0\x9F\xA6", "\xE0\x80\xAF"}) {
    EXPECT_TRUE(IsCompleteUtf8(t->Decode(t->Encode(s, false)))) << s;
  }
}

TEST(BpeTokenizerTest, VocabularyErrorsAreClear) {
  BpeVocab missing_byte = TinyVocab({});
  missing_byte.tokens[0] = "zzz";
  auto a = BpeTokenizer::Create(missing_byte, "v.gguf");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("byte 0"), std::string::npos) << a.status();
  BpeVocab dup = TinyVocab({});
  dup.tokens.push_back("a");
  auto b = BpeTokenizer::Create(dup, "v.gguf");
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("duplicate token"), std::string::npos) << b.status();
  BpeVocab bad_merge = TinyVocab({});
  bad_merge.merges.emplace_back("a", "b");  // "ab" is not a token
  EXPECT_FALSE(BpeTokenizer::Create(bad_merge, "v.gguf").ok());
  auto c = BpeTokenizer::Create(TinyVocab({}, {}, {"(unclosed"}), "v.gguf");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("v.gguf: pre-tokenizer regex"), std::string::npos)
      << c.status();
  auto d = PreTokenizerRegexes("nonsense");
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("smollm"), std::string::npos) << d.status();
  for (const char* name :
       {"gpt2", "default", "smollm", "llama3", "llama-bpe", "llama-v3", "qwen2"}) {
    auto r = PreTokenizerRegexes(name);
    ASSERT_TRUE(r.ok()) << name;
    EXPECT_TRUE(BpeTokenizer::Create(TinyVocab({}, {}, *r), name).ok()) << name;
  }
}

TEST(BpeTokenizerTest, ConcurrentEncodesAgree) {
  auto t = Make(
      TinyVocab({{"t", "h"}, {"th", "e"}, {ByteSymbol(' '), "the"}}, {{"<|e|>", true}}, Gpt2()));
  ASSERT_NE(t, nullptr);
  std::vector<std::string> texts;
  for (int i = 0; i < 200; ++i)
    texts.push_back("the " + std::to_string(i) + " the<|e|>thethe " + std::string(i % 7, ' '));
  std::vector<std::vector<int>> expected;
  for (const auto& s : texts) expected.push_back(t->Encode(s, false));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (int rep = 0; rep < 20; ++rep) {
        for (size_t i = k; i < texts.size(); i += 1)
          mismatches += t->Encode(texts[i], false) != expected[i];
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(BpeTokenizerTest, LongInputsStayLinear) {
  const std::string sp = ByteSymbol(' ');
  auto t = Make(TinyVocab({{"a", "a"}, {"aa", "aa"}, {sp, "a"}, {sp, sp}}, {{"<|e|>", true}},
                          *PreTokenizerRegexes("llama3")));
  ASSERT_NE(t, nullptr);
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "word " + std::to_string(i) + " \n\t aaaa<|e|>";
  text += std::string(200000, 'a') + std::string(100000, ' ') + "x" + std::string(100000, '\n');
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int> ids = t->Encode(text, false);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "encoded " << text.size() << " bytes in " << ms << " ms\n";
  EXPECT_EQ(t->Decode(ids), text);
  EXPECT_LT(ms, 5000.0);  // quadratic behaviour would take minutes
  EXPECT_TRUE(PreTokenizerIgnoresMerges("llama-bpe"));
  EXPECT_FALSE(PreTokenizerIgnoresMerges("smollm"));
}

// --- tokenizer.json ---------------------------------------------------------------------------

TEST(BpeTokenizerTest, TokenizerJsonRoundTrip) {
  BpeVocab v = TinyVocab({{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"1", "2"}},
                         {{"<|s|>", true}, {"<u>", false}}, *PreTokenizerRegexes("smollm"));
  v.bos_id = v.added_ids[0];
  v.eos_id = v.added_ids[0];
  v.add_bos = true;
  v.chat_template = "{% for m in messages %}<|s|>{{ m.content }}{% endfor %}";
  auto t = Make(v);
  ASSERT_NE(t, nullptr);
  const std::string dir = MakeTempDir("bpe_json");
  ASSERT_TRUE(t->WriteHuggingFaceFiles(dir).ok());
  auto back = BpeTokenizer::FromTokenizerJson(dir + "/tokenizer.json");
  ASSERT_TRUE(back.ok()) << back.status();
  for (const char* s : {"hello 12 <|s|>x<u>", "", "  spaces\n\nand\tmore 123", "h\xC3\xA9llo"}) {
    EXPECT_EQ((*back)->Encode(s, true), t->Encode(s, true)) << s;
  }
  EXPECT_EQ((*back)->vocab().bos_id, v.bos_id);
  EXPECT_EQ((*back)->vocab().eos_id, v.eos_id);
  EXPECT_TRUE((*back)->vocab().add_bos);
  EXPECT_EQ((*back)->vocab().chat_template, v.chat_template);
  EXPECT_EQ((*back)->vocab().split_regexes, v.split_regexes);
  // Through the facade: a directory with tokenizer.json (and no tokenizer.model) is BPE.
  auto facade = Tokenizer::Load(dir);
  ASSERT_TRUE(facade.ok()) << facade.status();
  EXPECT_TRUE((*facade)->is_byte_level_bpe());
  EXPECT_EQ((*facade)->chat_template(), v.chat_template);
  EXPECT_EQ((*facade)->Encode("hello", true), t->Encode("hello", true));
  EXPECT_EQ((*facade)->TokenId("<|s|>"), v.bos_id);
}

// Writes a tokenizer.json into a fresh directory; returns its path.
std::string WriteJson(const std::string& tag, const nlohmann::json& j) {
  const std::string dir = MakeTempDir(tag);
  WriteFile(dir + "/tokenizer.json", j.dump());
  return dir + "/tokenizer.json";
}

nlohmann::json MinimalTokenizerJson() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteSymbol(static_cast<unsigned char>(b))] = b;
  vocab["ab"] = 256;
  return {
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor", nullptr},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b"}}}}};
}

TEST(BpeTokenizerTest, TokenizerJsonForms) {
  // Merges as "a b" strings and as [a, b] pairs read the same; tokenizer_config.json gives the
  // rest.
  nlohmann::json j = MinimalTokenizerJson();
  auto strings = BpeTokenizer::FromTokenizerJson(WriteJson("bpe_forms1", j));
  ASSERT_TRUE(strings.ok()) << strings.status();
  j["model"]["merges"] = nlohmann::json::array({nlohmann::json::array({"a", "b"})});
  const std::string path = WriteJson("bpe_forms2", j);
  WriteFile(
      path.substr(0, path.rfind('/')) + "/tokenizer_config.json",
      R"({"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
                "bos_token": {"content": "ab"}, "eos_token": "a", "add_bos_token": true})");
  auto pairs = BpeTokenizer::FromTokenizerJson(path);
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  EXPECT_EQ((*strings)->Encode("xab", false), std::vector<int>({'x', 256}));
  EXPECT_EQ((*pairs)->Encode("xab", false), std::vector<int>({'x', 256}));
  EXPECT_EQ((*pairs)->vocab().chat_template, "D");
  EXPECT_EQ((*pairs)->vocab().bos_id, 256);
  EXPECT_EQ((*pairs)->vocab().eos_id, 'a');
  EXPECT_EQ((*pairs)->Encode("x", true), std::vector<int>({256, 'x'}));
  // NFC: "e" + U+0301 becomes U+00E9 before the bytes are spelled (in gaps between special tokens).
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  auto nfc = BpeTokenizer::FromTokenizerJson(WriteJson("bpe_forms3", j));
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  EXPECT_TRUE((*nfc)->vocab().normalize_nfc);
  EXPECT_EQ((*nfc)->Encode("e\xCC\x81", false), std::vector<int>({0xC3, 0xA9}));
  EXPECT_EQ((*strings)->Encode("e\xCC\x81", false), std::vector<int>({'e', 0xCC, 0x81}));
  const std::string dir = MakeTempDir("bpe_forms_nfc");
  ASSERT_TRUE((*nfc)->WriteHuggingFaceFiles(dir).ok());
  auto back = BpeTokenizer::FromTokenizerJson(dir + "/tokenizer.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE((*back)->vocab().normalize_nfc);
}

TEST(BpeTokenizerTest, UnsupportedTokenizerJsonIsAClearError) {
  struct Case {
    const char* what;
    std::function<void(nlohmann::json&)> edit;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"normalizer",
       [](nlohmann::json& j) {
         j["normalizer"] = {{"type", "Lowercase"}};
       },
       "normalizer Lowercase (only none or NFC)"},
      {"model", [](nlohmann::json& j) { j["model"]["type"] = "WordPiece"; },
       "model type WordPiece"},
      {"byte_fallback", [](nlohmann::json& j) { j["model"]["byte_fallback"] = true; },
       "byte_fallback"},
      {"metaspace",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {{"type", "Metaspace"}};
       },
       "pre_tokenizer type Metaspace"},
      {"split",
       [](nlohmann::json& j) {
         j["pre_tokenizer"] = {
             {"type", "Sequence"},
             {"pretokenizers",
              {{{"type", "Split"}, {"pattern", {{"Regex", "x"}}}, {"behavior", "Removed"}},
               {{"type", "ByteLevel"}}}}};
       },
       "behavior Removed"},
      {"no bytelevel", [](nlohmann::json& j) { j["pre_tokenizer"] = nullptr; },
       "without ByteLevel"},
      {"eos template",
       [](nlohmann::json& j) {
         j["post_processor"] = {
             {"type", "TemplateProcessing"},
             {"single", {{{"Sequence", {{"id", "A"}}}}, {{"SpecialToken", {{"id", "ab"}}}}}}};
       },
       "after the text"},
      {"not json", [](nlohmann::json& j) { j = "just a string"; }, "malformed tokenizer.json"},
      // Issue 17, found by fuzz/tokenizer_json_fuzzer: a float id was undefined behaviour in
      // get<int>(), 2^32 + 7 wrapped to 7, and one id of 2^31 - 1 allocated 2^31 strings.
      {"float id", [](nlohmann::json& j) { j["model"]["vocab"]["ab"] = 1e300; },
       "token \"ab\" has id 1e+300, not an integer in [0, 2^31)"},
      {"wide id", [](nlohmann::json& j) { j["model"]["vocab"]["ab"] = 4294967303; },
       "token \"ab\" has id 4294967303"},
      {"huge id", [](nlohmann::json& j) { j["model"]["vocab"]["ab"] = 2147483647; },
       "token id 2147483647 with only 257 tokens"},
  };
  for (const Case& c : cases) {
    nlohmann::json j = MinimalTokenizerJson();
    c.edit(j);
    const std::string path = WriteJson("bpe_bad", j);
    auto t = BpeTokenizer::FromTokenizerJson(path);
    ASSERT_FALSE(t.ok()) << c.what;
    EXPECT_NE(t.status().message().find(path), std::string::npos) << c.what << ": " << t.status();
    EXPECT_NE(t.status().message().find(c.needle), std::string::npos)
        << c.what << ": " << t.status();
  }
  const std::string dir = MakeTempDir("bpe_missing");
  auto missing = Tokenizer::Load(dir);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("tokenizer.json"), std::string::npos)
      << missing.status();
}

// --- incremental detokenization --------------------------------------------------------------

// Streams ids[split..] after the context ids[..split]; the pushes must add up to the decode of all
// ids, and each push must be whole characters when the context is (a prompt always is).
void ExpectStreamsWholeCharacters(const Tokenizer& tok, const std::vector<int>& ids, size_t split) {
  const std::vector<int> context(ids.begin(), ids.begin() + split);
  IncrementalDetokenizer detok(tok, context);
  std::string streamed;
  for (size_t i = split; i < ids.size(); ++i) {
    const std::string piece = detok.Push(ids[i]);
    if (IsCompleteUtf8(tok.Decode(context))) {
      EXPECT_TRUE(IsCompleteUtf8(piece)) << "push " << i;
    }
    streamed += piece;
  }
  EXPECT_EQ(tok.Decode(context) + streamed, tok.Decode(ids));
}

TEST(BpeTokenizerTest, IncrementalDetokenizerHoldsBackPartialCharacters) {
  // A byte-only vocabulary: every multi-byte character is split across tokens.
  const std::string dir = MakeTempDir("bpe_detok");
  ASSERT_TRUE(Make(TinyVocab({}, {}, Gpt2()))->WriteHuggingFaceFiles(dir).ok());
  auto tok = Tokenizer::Load(dir);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int> unicorn = (*tok)->Encode("\xF0\x9F\xA6\x84", false);  // U+1F984
  ASSERT_EQ(unicorn.size(), 4u);
  IncrementalDetokenizer detok(**tok, {});
  EXPECT_EQ(detok.Push(unicorn[0]), "");
  EXPECT_EQ(detok.Push(unicorn[1]), "");
  EXPECT_EQ(detok.Push(unicorn[2]), "");
  EXPECT_EQ(detok.Push(unicorn[3]), "\xF0\x9F\xA6\x84");
  const std::string text =
      "family \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \xE4\xBD\xA0\xE5\xA5\xBD, caf\xC3\xA9!";
  const std::vector<int> ids = (*tok)->Encode(text, false);
  for (size_t split : {size_t{0}, size_t{1}, size_t{8}, size_t{9}, size_t{10}})
    ExpectStreamsWholeCharacters(**tok, ids, split);
  // An invalid byte is shown as it is once the next one proves it can't be completed.
  IncrementalDetokenizer bad(**tok, {});
  EXPECT_EQ(bad.Push(0xE4), "");
  EXPECT_EQ(bad.Push('a'),
            "\xE4"
            "a");
}

// --- SmolLM2 (real vocabulary) against transformers ------------------------------------------

struct GoldenCase {
  std::string source, text, decoded;
  std::vector<int> ids;
  // HF's ids with the "llama3" or "qwen2" pre-tokenizer or the "nfc" normalizer, and the pieces'
  // byte lengths by pre-tokenizer ("smollm", "llama3", "qwen2").
  std::map<std::string, std::vector<int>> variant_ids, piece_bytes;
};

std::vector<GoldenCase> LoadGolden(nlohmann::json* header) {
  const auto golden =
      nlohmann::json::parse(ReadFile(SourcePath("tests/golden/smollm2_tokenizer.json")));
  *header = golden.at("header");
  std::vector<GoldenCase> out;
  for (const auto& c : golden.at("cases")) {
    GoldenCase g;
    g.source = c.at("source");
    g.text = c.contains("text_hex") ? FromHex(c.at("text_hex")) : c.at("text").get<std::string>();
    g.ids = c.at("ids").get<std::vector<int>>();
    g.decoded = c.at("decoded");
    for (const char* name : {"llama3", "qwen2", "nfc"}) {
      g.variant_ids[name] = c.at(std::string("ids_") + name).get<std::vector<int>>();
    }
    for (const auto& [name, lengths] : c.at("piece_bytes").items()) {
      g.piece_bytes[name] = lengths.get<std::vector<int>>();
    }
    out.push_back(std::move(g));
  }
  return out;
}

// Every golden text: identical ids and identical decoded text; the first mismatch shows both lists.
void ExpectMatchesGolden(const Tokenizer& tok, const std::vector<GoldenCase>& cases,
                         const std::string& what) {
  size_t mismatches = 0;
  for (const GoldenCase& c : cases) {
    const std::vector<int> ids = tok.Encode(c.text, /*add_bos=*/true);
    const std::string decoded = tok.Decode(c.ids);
    if (ids == c.ids && decoded == c.decoded) continue;
    if (mismatches++ == 0) {
      ADD_FAILURE() << what << ": first mismatch, " << c.source << " text \"" << c.text
                    << "\"\n  ours:         " << JoinIds(ids)
                    << "\n  transformers: " << JoinIds(c.ids) << "\n  decoded ours: \"" << decoded
                    << "\"\n  decoded HF:   \"" << c.decoded << "\"";
    }
  }
  EXPECT_EQ(mismatches, 0u) << what << ": " << mismatches << " of " << cases.size()
                            << " texts differ";
}

TEST(BpeTokenizerTest, SmolLM2MatchesTransformers) {
  PMPD_REQUIRE_SMOLLM2();
  nlohmann::json header;
  const std::vector<GoldenCase> cases = LoadGolden(&header);
  ASSERT_GE(cases.size(), 200u);
  auto tok = Tokenizer::Load(SmolLM2Path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  ASSERT_TRUE((*tok)->is_byte_level_bpe());
  ExpectMatchesGolden(**tok, cases, "GGUF");
  // Speed: all texts, a fresh tokenizer's cold cache.
  auto cold = Tokenizer::Load(SmolLM2Path());
  ASSERT_TRUE(cold.ok());
  const auto start = std::chrono::steady_clock::now();
  size_t tokens = 0;
  for (const GoldenCase& c : cases) tokens += (*cold)->Encode(c.text, true).size();
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::cout << "encoded " << cases.size() << " golden texts (" << tokens << " tokens) in " << ms
            << " ms\n";
  RecordProperty("encode_ms", static_cast<int>(ms));
  EXPECT_LT(ms, 1000.0);
  // Conventions of the model's files.
  EXPECT_EQ((*tok)->TokenId("<|im_end|>"), 2);
  EXPECT_EQ((*tok)->TokenId("<|im_start|>"), 1);
  EXPECT_EQ((*tok)->TokenId("no such token"), -1);
  EXPECT_EQ((*tok)->eos_id(), 2);
  EXPECT_NE((*tok)->chat_template().find("<|im_start|>"), std::string::npos);
  EXPECT_EQ((*tok)->vocab_size(), 49152);
}

TEST(BpeTokenizerTest, SmolLM2TokenizerJsonWeWriteMatchesTransformers) {
  PMPD_REQUIRE_SMOLLM2();
  nlohmann::json header;
  const std::vector<GoldenCase> cases = LoadGolden(&header);
  auto gguf = Tokenizer::Load(SmolLM2Path());
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  // The GGUF's vocabulary written as Hugging Face files, read back through the facade.
  auto file = GgufFile::Open(SmolLM2Path());
  ASSERT_TRUE(file.ok()) << file.status();
  auto vocab = BpeVocabFromGguf(**file);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  auto bpe = BpeTokenizer::Create(*std::move(vocab), SmolLM2Path());
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  // PMPD_KEEP_TOKENIZER_DIR keeps the files for `scripts/make_bpe_tokenizer_golden.py --verify
  // DIR`.
  const char* keep = std::getenv("PMPD_KEEP_TOKENIZER_DIR");
  const std::string out = keep != nullptr && *keep != '\0' ? keep : MakeTempDir("smollm2_json");
  ASSERT_TRUE((*bpe)->WriteHuggingFaceFiles(out).ok());
  auto json = Tokenizer::Load(out);
  ASSERT_TRUE(json.ok()) << json.status();
  ExpectMatchesGolden(**json, cases, "tokenizer.json written from the GGUF");
  EXPECT_EQ((*json)->chat_template(), (*gguf)->chat_template());
  EXPECT_EQ((*json)->bos_id(), (*gguf)->bos_id());
  EXPECT_EQ((*json)->eos_id(), (*gguf)->eos_id());
}

// Our PCRE2 regexes against HF's Oniguruma: the same SmolLM2 vocabulary with the pre-tokenizers of
// SmolLM, Llama 3 (and its ignore_merges) and Qwen2 cuts every golden text into the same pieces and
// gives the same ids; so does the NFC normalizer (ICU) against HF's.
TEST(BpeTokenizerTest, PreTokenizerFamiliesMatchTransformers) {
  PMPD_REQUIRE_SMOLLM2();
  nlohmann::json header;
  const std::vector<GoldenCase> cases = LoadGolden(&header);
  auto file = GgufFile::Open(SmolLM2Path());
  ASSERT_TRUE(file.ok()) << file.status();
  auto base = BpeVocabFromGguf(**file);
  ASSERT_TRUE(base.ok()) << base.status();
  for (const std::string name : {"smollm", "llama3", "qwen2", "nfc"}) {
    BpeVocab v = *base;
    v.split_regexes = *PreTokenizerRegexes(name == "nfc" ? "smollm" : name);
    v.ignore_merges = name == "llama3";
    v.normalize_nfc = name == "nfc";
    auto tok = BpeTokenizer::Create(std::move(v), name);
    ASSERT_TRUE(tok.ok()) << tok.status();
    size_t piece_mismatches = 0, id_mismatches = 0;
    for (const GoldenCase& c : cases) {
      std::vector<int> lengths;
      for (const std::string& p : (*tok)->PreTokenize(c.text))
        lengths.push_back(static_cast<int>(p.size()));
      if (name != "nfc" && lengths != c.piece_bytes.at(name) && piece_mismatches++ == 0) {
        ADD_FAILURE() << name << ": first piece mismatch, " << c.source << " text \"" << c.text
                      << "\"\n  ours: " << JoinIds(lengths)
                      << "\n  HF:   " << JoinIds(c.piece_bytes.at(name));
      }
      if (name == "smollm") continue;
      const std::vector<int> ids = (*tok)->Encode(c.text, true);
      if (ids != c.variant_ids.at(name) && id_mismatches++ == 0) {
        ADD_FAILURE() << name << ": first id mismatch, " << c.source << " text \"" << c.text
                      << "\"\n  ours:         " << JoinIds(ids)
                      << "\n  transformers: " << JoinIds(c.variant_ids.at(name));
      }
    }
    EXPECT_EQ(piece_mismatches, 0u) << name;
    EXPECT_EQ(id_mismatches, 0u) << name;
  }
}

TEST(BpeTokenizerTest, SmolLM2StreamsEmojiAndCjkWhole) {
  PMPD_REQUIRE_SMOLLM2();
  auto tok = Tokenizer::Load(SmolLM2Path());
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::string text =
      "<|im_start|>assistant\nfamily "
      "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 flags "
      "\xF0\x9F\x87\xAB\xF0\x9F\x87\xB7 "
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\xA6\x84"
      "<|im_end|>";
  const std::vector<int> ids = (*tok)->Encode(text, true);
  // Some character must really be split across tokens for this test to mean anything.
  bool split_char = false;
  for (int id : ids) split_char = split_char || !IsCompleteUtf8((*tok)->Decode({id}));
  EXPECT_TRUE(split_char);
  for (size_t split = 0; split < 6; ++split) ExpectStreamsWholeCharacters(**tok, ids, split);
}

}  // namespace
}  // namespace pmpd::models
