// Benchmark: greedy decode tokens/s on the CPU reference engine (median of --repeats runs).
// Usage: pmpd-bench-generate --model DIR [--new-tokens 256] [--repeats 5] [--threads N]
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/cli_common.h"
#include "inference/generator.h"
#include "inference/llama_model.h"

ABSL_FLAG(std::string, model, "", "Model directory (Hugging Face Llama layout). Required.");
ABSL_FLAG(int, new_tokens, 256, "Tokens generated per run (EOS ignored).");
ABSL_FLAG(int, repeats, 5, "Timed runs; the median is reported.");

int main(int argc, char** argv) {
  pmpd::cli::InitUsage("Greedy decode throughput of the CPU reference engine.");
  pmpd::cli::ParseFlags(argc, argv);
  auto model = pmpd::inference::LlamaModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return pmpd::cli::Fail("pmpd-bench-generate", model.status());
  pmpd::inference::GenerationOptions opt;
  opt.max_new_tokens = absl::GetFlag(FLAGS_new_tokens);
  opt.stop_at_eos = false;
  const std::vector<int> prompt = {1, 403, 407, 261,
                                   378};  // "Once upon a time" in stories260K's tokenizer
  std::vector<double> tps, prefill;
  for (int r = 0; r < absl::GetFlag(FLAGS_repeats) + 1; ++r) {
    auto res = pmpd::inference::Generate(**model, prompt, opt);
    if (!res.ok()) return pmpd::cli::Fail("pmpd-bench-generate", res.status());
    if (r == 0) continue;  // warm-up
    tps.push_back(res->decode_tokens_per_s());
    prefill.push_back(res->prefill_ms);
  }
  std::sort(tps.begin(), tps.end());
  std::sort(prefill.begin(), prefill.end());
  std::printf(
      "decode_tokens_per_s median %.1f (min %.1f, max %.1f) over %zu runs of %d tokens; prefill "
      "%.2f ms\n",
      tps[tps.size() / 2], tps.front(), tps.back(), tps.size(), opt.max_new_tokens,
      prefill[prefill.size() / 2]);
  return 0;
}
