// pmpd-make-tiny-model: write the built-in demo model (random weights + a small trained tokenizer).
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "cli/cli_common.h"
#include "models/random_llama.h"

ABSL_FLAG(std::string, out, "",
          "Directory to write config.json, model.safetensors and tokenizer.model into. Required.");
ABSL_FLAG(uint64_t, seed, 1234, "Seed of the weight stream.");

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "Write a tiny random-weight Llama (2 layers, hidden 64, grouped-query attention) with a "
      "small\n"
      "sentencepiece tokenizer, for demos and tests when no real model is at hand. Its text is "
      "gibberish.",
      {{"Output", {"out", "seed"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-make-tiny-model", [] {
    const std::string out = absl::GetFlag(FLAGS_out);
    if (out.empty())
      return pmpd::cli::Fail("pmpd-make-tiny-model",
                             absl::InvalidArgumentError("--out is required"));
    int vocab = 0;
    if (auto st = pmpd::models::WriteTinyTokenizer(out, &vocab); !st.ok())
      return pmpd::cli::Fail("pmpd-make-tiny-model", st);
    if (auto st = pmpd::models::WriteRandomLlama(out, pmpd::models::TinyDemoConfig(vocab),
                                                 absl::GetFlag(FLAGS_seed));
        !st.ok()) {
      return pmpd::cli::Fail("pmpd-make-tiny-model", st);
    }
    std::printf("wrote a tiny random Llama (vocab %d) to %s\n", vocab, out.c_str());
    return 0;
  });
}
