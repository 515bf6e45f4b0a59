// Benchmark: switch-point labelling throughput (samples/s), batched branches against sequential
// branches (the PMPD reference's way), on the same prompts, interleaved so both see the same
// machine state; per prompt and mode the fastest of --repeats runs counts. Usage:
// pmpd-bench-gen-data --model DIR --c4 PATH [--docs 16] [--max-new-tokens 256]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "cli/cli_common.h"
#include "data_gen/gen_data_job.h"
#include "data_gen/switch_labeler.h"
#include "inference/llama_model.h"
#include "models/text_stream.h"
#include "models/tokenizer.h"

ABSL_FLAG(std::string, model, "", "Any-precision model directory. Required.");
ABSL_FLAG(std::string, c4, "", "C4 JSON-lines input (file, directory or glob). Required.");
ABSL_FLAG(int, docs, 16,
          "Prompts (the first documents, each cut to its first --prompt-tokens tokens).");
ABSL_FLAG(int, prompt_tokens, 128, "Prompt length.");
ABSL_FLAG(int, max_new_tokens, 256, "Tokens per branch.");
ABSL_FLAG(int, repeats, 3,
          "Runs per prompt and mode; the fastest counts (robust to other load on the machine).");
ABSL_FLAG(int, high, 4, "High precision of the pair.");
ABSL_FLAG(int, low, 3, "Low precision of the pair.");

int main(int argc, char** argv) {
  using namespace pmpd;
  constexpr char kProgram[] = "pmpd-bench-gen-data";
  cli::InitUsage("Labelling samples/s: batched branches vs sequential branches, same prompts.");
  cli::ParseFlags(argc, argv);
  auto model = inference::LlamaModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return cli::Fail(kProgram, model.status());
  auto tok = models::Tokenizer::Load(absl::GetFlag(FLAGS_model));
  if (!tok.ok()) return cli::Fail(kProgram, tok.status());
  auto stream = models::TextStream::Open(absl::GetFlag(FLAGS_c4));
  if (!stream.ok()) return cli::Fail(kProgram, stream.status());
  (*model)->CacheDequantizedWeights();
  data_gen::PairLabelOptions o;
  o.high = absl::GetFlag(FLAGS_high);
  o.low = absl::GetFlag(FLAGS_low);
  o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  o.candidate_steps = data_gen::DefaultCandidateSteps(o.max_new_tokens);
  std::vector<std::vector<int>> prompts;
  std::string text;
  while (static_cast<int>(prompts.size()) < absl::GetFlag(FLAGS_docs) && *(*stream)->Next(&text)) {
    std::vector<int> ids = (*tok)->Encode(text, true);
    ids.resize(std::min<size_t>(ids.size(), absl::GetFlag(FLAGS_prompt_tokens)));
    prompts.push_back(ids);
  }
  const std::string reference =
      "";  // Rouge-L is not what is timed; an empty reference keeps it negligible
  double t_batched = 0, t_seq = 0;
  int same = 0;
  for (const auto& p : prompts) {
    double best_b = 1e30, best_s = 1e30;
    for (int r = 0; r < absl::GetFlag(FLAGS_repeats); ++r) {
      auto t0 = std::chrono::steady_clock::now();
      auto b = data_gen::LabelPairBatched(**model, **tok, p, reference, o);
      auto t1 = std::chrono::steady_clock::now();
      auto s = data_gen::LabelPairSequential(**model, **tok, p, reference, o);
      auto t2 = std::chrono::steady_clock::now();
      if (!b.ok()) return cli::Fail(kProgram, b.status());
      if (!s.ok()) return cli::Fail(kProgram, s.status());
      best_b = std::min(best_b, std::chrono::duration<double>(t1 - t0).count());
      best_s = std::min(best_s, std::chrono::duration<double>(t2 - t1).count());
      if (r == 0) same += b->branch_ids == s->branch_ids && b->high_ids == s->high_ids;
    }
    t_batched += best_b;
    t_seq += best_s;
  }
  const double n = static_cast<double>(prompts.size());
  std::printf("pair %d->%d, %zu prompts of <= %d tokens, %d new tokens, candidates", o.high, o.low,
              prompts.size(), absl::GetFlag(FLAGS_prompt_tokens), o.max_new_tokens);
  for (int c : o.candidate_steps) std::printf(" %d", c);
  std::printf(
      "\n  batched branches:    %.2f samples/s\n  sequential branches: %.2f samples/s\n  ratio: "
      "%.2fx "
      "(identical outputs on %d/%zu prompts)\n",
      n / t_batched, n / t_seq, t_seq / t_batched, same, prompts.size());
  return 0;
}
