#include "inference/perplexity.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace pmpd::inference {

double PerplexityResult::perplexity() const { return tokens > 0 ? std::exp(nll / tokens) : NAN; }

std::vector<int> TokenStream(const models::Tokenizer& tokenizer,
                             const std::vector<std::string>& docs) {
  std::vector<int> stream;
  for (const auto& d : docs) {
    const std::vector<int> ids = tokenizer.Encode(d, /*add_bos=*/true);
    stream.insert(stream.end(), ids.begin(), ids.end());
  }
  return stream;
}

absl::StatusOr<PerplexityResult> Perplexity(LlamaModel& model, const models::Tokenizer& tokenizer,
                                            const std::vector<std::string>& docs, int seq_len,
                                            const std::function<void(int, int)>& progress) {
  if (seq_len < 2 || seq_len > model.max_context()) {
    return absl::InvalidArgumentError(absl::StrCat("--seq-len must be in [2, ", model.max_context(),
                                                   "] (the model's context), got ", seq_len));
  }
  const std::vector<int> stream = TokenStream(tokenizer, docs);
  PerplexityResult r;
  const int total = static_cast<int>((stream.size() + seq_len - 1) / seq_len);
  for (size_t start = 0; start < stream.size(); start += seq_len) {
    const size_t len = std::min<size_t>(seq_len, stream.size() - start);
    if (len < 2) break;
    int64_t predicted = 0;
    auto nll = model.SequenceNll(absl::MakeConstSpan(stream).subspan(start, len), &predicted);
    if (!nll.ok()) return nll.status();
    r.nll += *nll;
    r.tokens += predicted;
    ++r.chunks;
    if (progress) progress(r.chunks, total);
  }
  if (r.tokens == 0) return absl::InvalidArgumentError("no tokens to score");
  return r;
}

}  // namespace pmpd::inference
