// pmpd-perplexity: perplexity of a model (16/32-bit or any-precision at a chosen precision).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "inference/llama_model.h"
#include "inference/perplexity.h"
#include "models/file_util.h"
#include "models/text_data.h"
#include "models/tokenizer.h"

ABSL_FLAG(std::string, model, "",
          "Model directory (plain or any-precision) or a llama GGUF file. Required.");
ABSL_FLAG(int, precision, 0,
          "Bits for an any-precision model (seed..parent); 0 = its parent precision.");
ABSL_FLAG(std::string, data, "",
          "JSON lines with a `text` field (.json/.jsonl[.gz]) or plain text. Required.");
ABSL_FLAG(std::string, byte_range, "0:1",
          "Part of the data file to use, as fractions BEGIN:END of its bytes "
          "(moved to document boundaries), e.g. 0.75:1 for the last quarter.");
ABSL_FLAG(int, max_docs, 0, "Use at most this many documents (0 = all).");
ABSL_FLAG(int, seq_len, 256, "Tokens per chunk; chunks do not overlap.");
ABSL_FLAG(bool, json, false, "Print one JSON object with perplexity, tokens, chunks.");

namespace {
constexpr char kProgram[] = "pmpd-perplexity";

int Run() {
  using namespace pmpd;
  const std::string dir = absl::GetFlag(FLAGS_model), data = absl::GetFlag(FLAGS_data);
  if (dir.empty() || data.empty()) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError("--model and --data are required (see --help)"));
  }
  std::vector<std::string> range = absl::StrSplit(absl::GetFlag(FLAGS_byte_range), ':');
  double begin = 0, end = 1;
  if (range.size() != 2 || !absl::SimpleAtod(range[0], &begin) ||
      !absl::SimpleAtod(range[1], &end)) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError("--byte-range must be BEGIN:END, e.g. 0.75:1"));
  }
  auto tok = models::Tokenizer::Load(dir);
  if (!tok.ok()) return cli::Fail(kProgram, tok.status());
  auto model = inference::LlamaModel::Load(dir);
  if (!model.ok()) return cli::Fail(kProgram, model.status());
  const int p = absl::GetFlag(FLAGS_precision);
  if (p != 0) {
    if (auto st = (*model)->SetPrecision(p); !st.ok()) return cli::Fail(kProgram, st);
  }
  auto docs = models::ReadTextDocs(data, absl::GetFlag(FLAGS_max_docs), begin, end);
  if (!docs.ok()) return cli::Fail(kProgram, docs.status());
  auto r = inference::Perplexity(
      **model, **tok, docs->texts, absl::GetFlag(FLAGS_seq_len),
      [](int done, int total) { std::fprintf(stderr, "\rperplexity: chunk %d/%d", done, total); });
  std::fprintf(stderr, "\n");
  if (!r.ok()) return cli::Fail(kProgram, r.status());
  if (absl::GetFlag(FLAGS_json)) {
    nlohmann::json j = {{"model", dir},
                        {"precision", (*model)->precision()},
                        {"data", data},
                        {"documents", docs->texts.size()},
                        {"perplexity", r->perplexity()},
                        {"tokens", r->tokens},
                        {"chunks", r->chunks},
                        {"seq_len", absl::GetFlag(FLAGS_seq_len)},
                        {"malformed_lines", docs->malformed_lines}};
    std::cout << j.dump() << "\n";
  } else {
    std::printf(
        "perplexity %.4f over %lld tokens (%d chunks of <= %d)%s\n", r->perplexity(),
        static_cast<long long>(r->tokens), r->chunks, absl::GetFlag(FLAGS_seq_len),
        (*model)->precision() ? absl::StrCat(" at ", (*model)->precision(), " bits").c_str() : "");
  }
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  pmpd::cli::InitUsage(
      "Perplexity over non-overlapping chunks of a text file, for plain and any-precision models.\n"
      "Example: pmpd-perplexity --model /tmp/s260k-ap --precision 3 "
      "--data ../shared/data/text/tinystories_train_head2MiB.txt --byte-range 0.75:1");
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-perplexity", [] { return Run(); });
}
