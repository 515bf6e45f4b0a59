#include "inference/sampler.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace pmpd::inference {

absl::Status ValidateSamplingOptions(const SamplingOptions& o) {
  if (!(o.temperature >= 0.f) || !std::isfinite(o.temperature)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--temperature must be >= 0, got ", o.temperature));
  }
  if (o.top_k < 0)
    return absl::InvalidArgumentError(absl::StrCat("--top-k must be >= 0, got ", o.top_k));
  if (!(o.top_p > 0.f && o.top_p <= 1.f)) {
    return absl::InvalidArgumentError(absl::StrCat("--top-p must be in (0, 1], got ", o.top_p));
  }
  return absl::OkStatus();
}

int Argmax(absl::Span<const float> logits) {
  int best = 0;
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = static_cast<int>(i);
  }
  return best;
}

Sampler::Sampler(const SamplingOptions& options) : options_(options), rng_(options.seed) {}

int Sampler::Sample(absl::Span<const float> logits) {
  if (options_.temperature == 0.f) return Argmax(logits);
  // Raw logits, scaled inside the exponent in double: (l - max) / T is <= 0, so a tiny T gives
  // weights 0 or 1 (the argmax) instead of inf - inf = NaN (dividing first overflowed at 1e-38).
  const double t = options_.temperature;
  auto weight = [&](float l, float max_logit) {
    return std::exp(static_cast<double>(l - max_logit) / t);
  };
  auto& c = scratch_;
  c.clear();
  for (size_t i = 0; i < logits.size(); ++i) c.emplace_back(logits[i], static_cast<int>(i));
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = c.size();
  if (options_.top_k > 0 && static_cast<size_t>(options_.top_k) < keep) {
    keep = options_.top_k;
    std::partial_sort(c.begin(), c.begin() + keep, c.end(), by_logit);
    c.resize(keep);
  }
  const float max_logit = std::max_element(c.begin(), c.end(), [](const auto& a, const auto& b) {
                            return a.first < b.first;
                          })->first;
  double total = 0;
  for (auto& [l, i] : c) total += weight(l, max_logit);
  if (options_.top_p < 1.f) {
    std::sort(c.begin(), c.end(), by_logit);
    double cum = 0;
    size_t n = 0;
    while (n < c.size()) {
      cum += weight(c[n].first, max_logit) / total;
      ++n;
      if (cum >= options_.top_p) break;
    }
    c.resize(n);
    total = 0;
    for (auto& [l, i] : c) total += weight(l, max_logit);
  }
  std::uniform_real_distribution<double> u(0.0, total);
  double r = u(rng_);
  for (const auto& [l, i] : c) {
    r -= weight(l, max_logit);
    if (r <= 0) return i;
  }
  return c.back().second;
}

}  // namespace pmpd::inference
