// Fuzz target: the JSON files of a model directory. The same bytes as config.json (the Llama
// config and its "anyprec" block) and as tokenizer_config.json. Any crash, sanitizer report or
// escaping exception is a finding; errors are the expected outcome for most inputs.
#include <cstdint>
#include <string>

#include "fuzz/fuzz_util.h"
#include "models/anyprec_checkpoint.h"
#include "models/bpe_tokenizer.h"
#include "models/llama_config.h"

using namespace pmpd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto c = models::ParseLlamaConfig(text, "config.json"); c.ok()) {
    (void)models::LlamaProjections(*c);  // sizes derived from a config that passed
    (void)models::LlamaConfigToJson(*c);
  }
  fuzz::WriteScratch("config.json", text);
  (void)models::LoadLlamaConfig(fuzz::ScratchDir());
  (void)models::LoadAnyprecInfo(fuzz::ScratchDir());
  (void)models::ReadTokenizerConfig(fuzz::WriteScratch("tokenizer_config.json", text));
  return 0;
}
