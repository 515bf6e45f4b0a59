// A synthetic pmpd-gen-data file for trainer tests: labels follow a rule hidden in the KV caches.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "dataset/kv_dataset.h"
#include "kernels/half.h"
#include "tests/test_util.h"

namespace pmpd::trainer {

constexpr int kH = 2, kD = 4;

// A dataset whose labels follow a rule the architecture can express: the class is the quadrant of
// (mean K[:, :, 0], mean K[:, :, 1]) over the prompt (plus 10% label noise). Pairs 4->3 and 3->2.
// `nan_sample` >= 0: that sample's first K value is NaN (for the refusal test). `label_metric`
// excess_nll: the costs put the rule's label at tolerance 0.05 nats per token (every step costs
// something, so the stored labels, at tolerance 0, are all "never"). `length_rule`: the class is
// the prompt length's octave in [8, 128) instead, and K/V are noise (the reference architecture's
// pooling cannot see the length; the prompt-length input can).
inline std::string SyntheticData(const std::string& tag, int n, uint64_t seed,
                                 std::vector<int64_t> precisions = {4, 3, 2}, int nan_sample = -1,
                                 const std::string& label_metric = dataset::kLabelRougeL,
                                 bool length_rule = false) {
  const std::string path = testing::MakeTempDir(tag) + "/synthetic.h5";
  dataset::KvDatasetHeader h;
  h.tool_version = "test";
  h.model_path = "synthetic";
  h.model_fingerprint = "0";
  h.reference = "precision:8";
  h.source = "synthetic";
  h.precisions = precisions;
  h.candidate_steps = {0, 10, 20};
  h.max_new_tokens = 30;
  h.kv_heads = kH;
  h.head_dim = kD;
  h.label_metric = label_metric;
  auto w = dataset::KvDatasetWriter::Create(path, h);
  EXPECT_TRUE(w.ok());
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> noise(0, 0.3f);
  std::uniform_int_distribution<int> len(4, 24), bit(0, 1);
  std::uniform_real_distribution<float> u(0, 1);
  for (int i = 0; i < n; ++i) {
    dataset::KvSample s;
    s.doc_id = i;
    // length_rule: t log-uniform in [8, 128), the class its octave (8-15, 16-31, 32-63, 64-127).
    const int t = length_rule ? static_cast<int>(8 * std::exp2(4 * u(rng))) : len(rng);
    s.prompt_ids.assign(t, 1);
    s.reference_ids = {2, 3};
    int a = bit(rng), b = bit(rng);
    int label = 2 * a + b;
    if (length_rule) {
      label = std::min(3, static_cast<int>(std::floor(std::log2(t / 8.0))));
      a = b = 0;
    }
    if (u(rng) < 0.1f) label = static_cast<int>(u(rng) * 4) % 4;
    for (size_t p = 0; p + 1 < precisions.size(); ++p) {
      dataset::KvPairSample ps;
      ps.label = label;
      if (label_metric == dataset::kLabelExcessNll) {
        for (int j = 0; j < 3; ++j) ps.excess_nll.push_back(j >= label ? 0.02 : 0.3 - 0.05 * j);
        ps.nll_high = 2.0;
        ps.label = dataset::CostSwitchLabel(ps.excess_nll, 0);
      } else {
        // Rouge-L consistent with the label: as good as staying high from the label's step on.
        for (int j = 0; j < 3; ++j) ps.rouge_l.push_back(j >= label ? 0.3 : 0.1);
        ps.rouge_l_high = 0.3;
      }
      for (int tok = 0; tok < t; ++tok) {
        for (int head = 0; head < kH; ++head) {
          for (int d = 0; d < kD; ++d) {
            const float sa = length_rule ? 0.f : (a ? 1.f : -1.f),
                        sb = length_rule ? 0.f : (b ? 1.f : -1.f);
            float kval = noise(rng), vval = noise(rng) + (d == 0 ? sa : 0.f) + (d == 1 ? sb : 0.f);
            if (d == 0) kval += sa;
            if (d == 1) kval += sb;
            ps.k.push_back(kernels::F32ToF16(kval));
            ps.v.push_back(kernels::F32ToF16(vval));
          }
        }
      }
      if (i == nan_sample) ps.k[0] = kernels::F32ToF16(std::nanf(""));
      s.pairs.push_back(std::move(ps));
    }
    EXPECT_TRUE((*w)->Append(s).ok());
  }
  EXPECT_TRUE((*w)->Finish().ok());
  return path;
}

}  // namespace pmpd::trainer
