// Next-token sampling from logits: greedy, temperature, top-k, top-p (nucleus), seeded.
// Semantics follow Hugging Face's logits warpers: temperature, then top-k, then top-p keeping the
// smallest set whose probability reaches p (always at least one token).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace pmpd::inference {

struct SamplingOptions {
  float temperature = 0.f;  // 0: greedy
  int top_k = 0;            // 0: off
  float top_p = 1.f;        // 1: off
  uint64_t seed = 0;
};

// Validates ranges (temperature >= 0, top_k >= 0, 0 < top_p <= 1); the message names the flag.
absl::Status ValidateSamplingOptions(const SamplingOptions& options);

// Index of the largest logit; the lowest index wins ties (as torch.argmax). O(V).
int Argmax(absl::Span<const float> logits);

class Sampler {
 public:
  explicit Sampler(const SamplingOptions& options);
  // One token from `logits`. Greedy when temperature == 0. O(V log V) with top-p, else O(V).
  int Sample(absl::Span<const float> logits);

 private:
  SamplingOptions options_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> scratch_;
};

}  // namespace pmpd::inference
