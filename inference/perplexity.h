// Perplexity over non-overlapping chunks of a token stream.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "inference/llama_model.h"
#include "models/tokenizer.h"

namespace pmpd::inference {

struct PerplexityResult {
  double nll = 0;      // summed negative log-likelihood (nats)
  int64_t tokens = 0;  // predicted tokens
  int chunks = 0;
  double perplexity() const;
};

// The stream is BOS + tokens of each document, documents concatenated; it is cut into chunks of
// seq_len tokens (the last may be shorter), each scored independently (the first token of a chunk
// is context only). Runs at the model's current precision. `progress(done, total)` per chunk.
absl::StatusOr<PerplexityResult> Perplexity(LlamaModel& model, const models::Tokenizer& tokenizer,
                                            const std::vector<std::string>& docs, int seq_len,
                                            const std::function<void(int, int)>& progress = {});

// The token stream Perplexity() scores (also the calibration stream of pmpd-quantize).
std::vector<int> TokenStream(const models::Tokenizer& tokenizer,
                             const std::vector<std::string>& docs);

}  // namespace pmpd::inference
