// Fuzz target: GGUF files (header, metadata of every type, tensor infos, data) and what the tools
// build from them: the Llama config, the byte-level BPE tokenizer (encoding and decoding a fixed
// text with special tokens), every tensor dequantized, and the weights under Hugging Face names
// (the Q/K permutation undone).
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz/fuzz_util.h"
#include "models/bpe_tokenizer.h"
#include "models/gguf.h"
#include "models/gguf_model.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = fuzz::WriteScratch("model.gguf", data, size);
  auto f = models::GgufFile::Open(path);
  if (!f.ok()) return 0;
  const models::GgufFile& g = **f;
  for (const auto& t : g.tensors()) {
    const int64_t n = t.numel();
    if (n <= 0 || n > (int64_t{1} << 22)) continue;
    std::vector<float> out(static_cast<size_t>(n));
    (void)g.DequantizeF32(t, out.data());
  }
  (void)models::LlamaConfigFromGguf(g);
  if (auto vocab = models::BpeVocabFromGguf(g); vocab.ok()) {
    if (auto tok = models::BpeTokenizer::Create(std::move(*vocab), path); tok.ok()) {
      const std::vector<int> ids =
          (*tok)->Encode("Hello <|im_start|>user\n wörld 123 \xF0\x9F\x98\x80 ab abc\n\n", true);
      (void)(*tok)->Decode(ids);
      (void)(*tok)->Decode({0, 1, 2, -1, 1 << 30}, /*skip_special=*/true);
    }
  }
  if (auto w = models::OpenGgufWeights(path); w.ok()) {
    for (const std::string& name : (*w)->Names()) (void)(*w)->Find(name);
  }
  return 0;
}
