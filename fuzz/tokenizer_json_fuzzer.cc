// Fuzz target: a Hugging Face tokenizer.json (vocabulary, merges, added tokens, pre-tokenizer
// sequence, decoder, post-processor), then encoding and decoding a fixed text with it.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "models/bpe_tokenizer.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tok =
      models::BpeTokenizer::FromTokenizerJson(fuzz::WriteScratch("tokenizer.json", data, size));
  if (!tok.ok()) return 0;
  const std::vector<int> ids = (*tok)->Encode(
      "Hello <|im_start|>user\n wörld 1234 \xF0\x9F\x98\x80 ab \xC3 \t\t x\n\n<s></s>", true);
  (void)(*tok)->Decode(ids);
  (void)(*tok)->Decode(ids, /*skip_special=*/true);
  (void)(*tok)->TokenId("<|im_end|>");
  return 0;
}
