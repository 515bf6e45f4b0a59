// DecodeWithoutEos: the text a generated continuation is scored by. Byte-level BPE decodes EOS as
// its text ("<|im_end|>"), so a continuation that stops at EOS would otherwise carry it into the
// Rouge-L comparison; sentencepiece decodes EOS as nothing.
#include "data_gen/switch_labeler.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "dataset/kv_dataset.h"
#include "models/bpe_tokenizer.h"
#include "models/tokenizer.h"
#include "tests/models/byte_alphabet.h"
#include "tests/test_util.h"

namespace pmpd::data_gen {
namespace {

// A byte-level BPE tokenizer whose EOS is the special token "<|e|>": ids 0..255 are the bytes (in
// GPT-2's byte alphabet, which spells the printable ASCII bytes as themselves), 256 is EOS.
std::unique_ptr<models::Tokenizer> TinyBpeWithEos() {
  models::BpeVocab v;
  for (int b = 0; b < 256; ++b)
    v.tokens.push_back(pmpd::testing::ByteSymbol(static_cast<unsigned char>(b)));
  v.added_ids = {256};
  v.added_special = {true};
  v.tokens.push_back("<|e|>");
  v.eos_id = 256;
  auto bpe = models::BpeTokenizer::Create(std::move(v), "tiny");
  EXPECT_TRUE(bpe.ok()) << bpe.status();
  if (!bpe.ok()) return nullptr;
  const std::string dir = testing::MakeTempDir("decode_without_eos");
  EXPECT_TRUE((*bpe)->WriteHuggingFaceFiles(dir).ok());
  auto tok = models::Tokenizer::Load(dir);
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(*tok) : nullptr;
}

TEST(DecodeWithoutEosTest, DropsOnlyOneFinalEosOfByteLevelBpe) {
  auto tok = TinyBpeWithEos();
  ASSERT_NE(tok, nullptr);
  ASSERT_EQ(tok->eos_id(), 256);
  const int e = tok->eos_id(), h = 'h', i = 'i';
  // Why the function exists: plain decoding spells EOS out.
  EXPECT_EQ(tok->Decode(std::vector<int>{h, i, e}), "hi<|e|>");
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{h, i, e}), "hi");
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{h, i}), "hi");  // stopped at max_new_tokens
  // Only the final token, and only one: an EOS elsewhere is generated text like any other token.
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{e, h, i}), "<|e|>hi");
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{h, e, e}), "h<|e|>");
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{e}), "");
  EXPECT_EQ(DecodeWithoutEos(*tok, std::vector<int>{}), "");
}

TEST(DecodeWithoutEosTest, SentencePieceEosDecodesToNothingEither) {
  PMPD_REQUIRE_SHARED("models/stories260K/tokenizer.model");
  auto tok = models::Tokenizer::Load(testing::SharedPath("models/stories260K"));
  ASSERT_TRUE(tok.ok()) << tok.status();
  std::vector<int> ids = (*tok)->Encode("Once upon a time", false);
  const std::string text = (*tok)->Decode(ids);
  EXPECT_EQ(text, "Once upon a time");
  EXPECT_EQ(DecodeWithoutEos(**tok, ids), text);
  ids.push_back((*tok)->eos_id());
  EXPECT_EQ(DecodeWithoutEos(**tok, ids), text);
  EXPECT_EQ((*tok)->Decode(ids), text);  // the same with or without: Rouge-L unchanged
}

// The label rule at tolerance 0 (what pmpd-gen-data stores) and with a tolerance (pmpd-train
// --label-tolerance): Rouge-L rounded to 3 decimals, earliest candidate at least high - tolerance.
TEST(SwitchLabelTest, EarliestCandidateWithinTheToleranceOfStayingHigh) {
  const std::vector<double> rouge = {0.30, 0.395, 0.41};
  EXPECT_EQ(LabelFromRouge(rouge, 0.40), 2);  // only the last is as good
  EXPECT_EQ(dataset::SwitchLabel(rouge, 0.40, 0.0), 2);
  EXPECT_EQ(dataset::SwitchLabel(rouge, 0.40, 0.005), 1);  // 0.395 >= 0.40 - 0.005 despite rounding
  EXPECT_EQ(dataset::SwitchLabel(rouge, 0.40, 0.10), 0);
  EXPECT_EQ(dataset::SwitchLabel(rouge, 0.50, 0.05), 3);  // none within: never
  // Rounded to 3 decimals before comparing: 0.4004 and 0.3996 are both 0.400.
  EXPECT_EQ(dataset::SwitchLabel(std::vector<double>{0.3996}, 0.4004, 0.0), 0);
  EXPECT_EQ(dataset::SwitchLabel(std::vector<double>{}, 0.4, 0.0), 0);
}

}  // namespace
}  // namespace pmpd::data_gen
