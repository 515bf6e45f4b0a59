// pmpd-perplexity: perplexity of a model (16/32-bit or any-precision at a chosen precision).
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "cli/progress.h"
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
ABSL_FLAG(int, num_docs, 0,
          "Use at most this many documents (0 = all). Was --max-docs (still accepted).");
ABSL_FLAG(int, seq_len, 256, "Tokens per chunk (>= 2); chunks do not overlap.");
ABSL_FLAG(std::string, device, "cpu",
          "cpu or auto (the same here): perplexity runs on the CPU reference engine. Accepted for "
          "the same --device vocabulary as the other tools; cuda is refused.");
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
      !absl::SimpleAtod(range[1], &end) || !(0 <= begin && begin < end && end <= 1)) {
    return cli::Fail(kProgram, absl::InvalidArgumentError(absl::StrCat(
                                   "--byte-range must be BEGIN:END with 0 <= BEGIN < END <= 1, "
                                   "e.g. 0.75:1; got \"",
                                   absl::GetFlag(FLAGS_byte_range), "\"")));
  }
  if (absl::GetFlag(FLAGS_seq_len) < 2 || absl::GetFlag(FLAGS_num_docs) < 0 ||
      absl::GetFlag(FLAGS_precision) < 0) {
    return cli::Fail(kProgram,
                     absl::InvalidArgumentError(absl::StrCat(
                         "--seq-len must be >= 2, --num-docs and --precision >= 0; got ",
                         absl::GetFlag(FLAGS_seq_len), ", ", absl::GetFlag(FLAGS_num_docs), " and ",
                         absl::GetFlag(FLAGS_precision))));
  }
  if (auto st = cli::CheckDeviceFlag(absl::GetFlag(FLAGS_device), /*cpu_only=*/true); !st.ok())
    return cli::Fail(kProgram, st);
  for (const auto& [flag, path] : {std::pair{"--model", dir}, std::pair{"--data", data}}) {
    if (!models::FileExists(path)) {
      return cli::Fail(kProgram, absl::NotFoundError(
                                     absl::StrCat(flag, " ", path, ": no such file or directory")));
    }
  }
  auto tok = models::Tokenizer::Load(dir);
  if (!tok.ok()) return cli::Fail(kProgram, tok.status());
  auto model = inference::LlamaModel::Load(dir);
  if (!model.ok()) return cli::Fail(kProgram, model.status());
  const int p = absl::GetFlag(FLAGS_precision);
  if (p != 0) {
    if (auto st = (*model)->SetPrecision(p); !st.ok()) return cli::Fail(kProgram, st);
  }
  auto docs = models::ReadTextDocs(data, absl::GetFlag(FLAGS_num_docs), begin, end);
  if (!docs.ok()) return cli::Fail(kProgram, docs.status());
  std::unique_ptr<cli::Progress> progress;  // made at the first chunk, when the count is known
  auto r = inference::Perplexity(
      **model, **tok, docs->texts, absl::GetFlag(FLAGS_seq_len), [&](int done, int total) {
        if (!progress) {
          progress = std::make_unique<cli::Progress>("perplexity", total, "chunks");
        }
        progress->Update(done);
      });
  if (progress) progress->Finish();
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
      "Perplexity over non-overlapping chunks of a text file, for plain and any-precision models."
      "\n\nExample:\n"
      "  pmpd-perplexity --model /tmp/s260k-ap --precision 3 "
      "--data ../shared/data/text/tinystories_train_head2MiB.txt --byte-range 0.75:1",
      {{"Model", {"model", "precision", "device"}},
       {"Data", {"data", "byte_range", "num_docs", "seq_len"}},
       {"Output", {"json"}}});
  pmpd::cli::ParseFlags(argc, argv);
  return pmpd::cli::RunGuarded("pmpd-perplexity", [] { return Run(); });
}
