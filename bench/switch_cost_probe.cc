// Research probe (issue 13): a switch step's cost measured by teacher forcing instead of one greedy
// continuation's Rouge-L. For each sample of a pmpd-gen-data file (its prompt and 8-bit reference
// continuation R) and each precision pair (hi, lo) of the file, prints the summed negative
// log-likelihood of R[1..] when the whole continuation runs at hi, and for every candidate step s
// the same sum when decoding switches to lo at step s: the cache holds the prompt and R[..s-2] at
// hi, the rest is fed at lo (step 0 and 1 both mean "every decode step at lo": the first token
// comes from the prefill, at hi). The excess over staying high is s's cost in nats; unlike a
// single text's overlap it cannot jump with one flipped token. One JSON object per sample on
// stdout; scripts/analyze_switch_labels.py --costs reads them.
// Usage: pmpd-switch-cost-probe --model ANYPREC_DIR --data GEN_DATA.h5 [--num-samples N]
// Cost per sample and pair: (candidates + 1) forwards of prompt + continuation on the CPU engine.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "dataset/kv_dataset.h"
#include "inference/llama_model.h"

ABSL_FLAG(std::string, model, "",
          "Any-precision model directory (the one that labelled). Required.");
ABSL_FLAG(std::string, data, "", "pmpd-gen-data HDF5 file. Required.");
ABSL_FLAG(int, num_samples, 0, "Samples from the start of the file (0: all).");
ABSL_FLAG(int, first_sample, 0, "First sample index (to split the work).");

namespace {
using namespace pmpd;

// Summed -log p(ids[j]) over the rows of `logits` ([rows, vocab]), row r predicting ids[first + r].
double SumNll(const std::vector<float>& logits, int vocab, const std::vector<int>& ids, int first,
              int rows, std::vector<double>* per_token) {
  double sum = 0;
  for (int r = 0; r < rows; ++r) {
    const float* row = logits.data() + static_cast<size_t>(r) * vocab;
    const float m = *std::max_element(row, row + vocab);
    double z = 0;
    for (int v = 0; v < vocab; ++v) z += std::exp(static_cast<double>(row[v] - m));
    const double nll = std::log(z) - (row[ids[first + r]] - m);
    if (per_token) per_token->push_back(nll);
    sum += nll;
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kProgram[] = "pmpd-switch-cost-probe";
  cli::InitUsage("Teacher-forced switch costs of a gen-data file's samples (research probe).");
  cli::ParseFlags(argc, argv);
  auto model = inference::LlamaModel::Load(absl::GetFlag(FLAGS_model));
  if (!model.ok()) return cli::Fail(kProgram, model.status());
  auto reader = dataset::KvDatasetReader::Open(absl::GetFlag(FLAGS_data));
  if (!reader.ok()) return cli::Fail(kProgram, reader.status());
  (*model)->CacheDequantizedWeights();
  inference::LlamaModel& m = **model;
  const int vocab = static_cast<int>(m.config().vocab_size);
  const auto& steps = (*reader)->header().candidate_steps;
  const int64_t n = (*reader)->num_samples();
  const int64_t first = absl::GetFlag(FLAGS_first_sample);
  const int64_t last = absl::GetFlag(FLAGS_num_samples) > 0
                           ? std::min<int64_t>(n, first + absl::GetFlag(FLAGS_num_samples))
                           : n;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = first; i < last; ++i) {
    auto s = (*reader)->ReadSample(i);
    if (!s.ok()) return cli::Fail(kProgram, s.status());
    const std::vector<int> prompt(s->prompt_ids.begin(), s->prompt_ids.end());
    const std::vector<int> ref(s->reference_ids.begin(), s->reference_ids.end());
    const int r_len = static_cast<int>(ref.size());
    nlohmann::json out = {{"sample", i}, {"doc_id", s->doc_id}, {"reference_tokens", r_len}};
    if (r_len < 2) {
      std::printf("%s\n", out.dump().c_str());
      continue;
    }
    std::vector<float> logits;
    for (auto [hi, lo] : (*reader)->pairs()) {
      // Staying high: one forward of prompt + R[..r_len-2]; rows predicting R[1..].
      std::vector<int> seq = prompt;
      seq.insert(seq.end(), ref.begin(), ref.end() - 1);
      m.Reset();
      if (auto st = m.SetPrecision(static_cast<int>(hi)); !st.ok()) return cli::Fail(kProgram, st);
      if (auto st = m.Forward(seq, true, &logits); !st.ok()) return cli::Fail(kProgram, st);
      const int p_len = static_cast<int>(prompt.size());
      if (!out.contains("kv_mean")) {
        // The learned scheduler's input at the first (prefill) precision: the last layer's K and V
        // over the prompt, mean-pooled over positions ([kv_heads * head_dim] each), so a probe can
        // read features and costs of one and the same model.
        std::vector<float> k, v;
        m.CopyLastLayerKv(&k, &v);
        const int heads = m.config().num_key_value_heads, dim = m.config().head_dim;
        const int total = m.cache_len();
        std::vector<double> mean(2 * heads * dim, 0.0);
        for (int h = 0; h < heads; ++h) {
          for (int t = 0; t < p_len; ++t) {
            for (int d = 0; d < dim; ++d) {
              const size_t at = (static_cast<size_t>(h) * total + t) * dim + d;
              mean[h * dim + d] += k[at] / p_len;
              mean[(heads + h) * dim + d] += v[at] / p_len;
            }
          }
        }
        out["kv_mean"] = mean;
        out["kv_precision"] = hi;
      }
      // Row p_len - 1 + t predicts R[t]; keep t >= 1 (R[0] comes from the prefill at hi always).
      std::vector<float> tail(logits.begin() + static_cast<size_t>(p_len) * vocab, logits.end());
      std::vector<double> hi_tok;
      const double nll_hi = SumNll(tail, vocab, ref, 1, r_len - 1, &hi_tok);
      nlohmann::json costs = nlohmann::json::array();
      for (int64_t step : steps) {
        const int k = std::max<int>(1, static_cast<int>(step));  // first token predicted at lo
        if (k >= r_len) {
          costs.push_back(0.0);
          continue;
        }
        std::vector<int> head = prompt;
        head.insert(head.end(), ref.begin(), ref.begin() + (k - 1));
        m.Reset();
        if (auto st = m.SetPrecision(static_cast<int>(hi)); !st.ok())
          return cli::Fail(kProgram, st);
        if (auto st = m.Forward(head, false, &logits); !st.ok()) return cli::Fail(kProgram, st);
        if (auto st = m.SetPrecision(static_cast<int>(lo)); !st.ok())
          return cli::Fail(kProgram, st);
        const std::vector<int> rest(ref.begin() + (k - 1), ref.end() - 1);  // predicts R[k..]
        if (auto st = m.Forward(rest, true, &logits); !st.ok()) return cli::Fail(kProgram, st);
        double hi_part = 0;
        for (int t = k; t < r_len; ++t) hi_part += hi_tok[t - 1];
        costs.push_back(SumNll(logits, vocab, ref, k, r_len - k, nullptr) - hi_part);
      }
      out[absl::StrCat(hi, "_", lo)] = {{"nll_high", nll_hi}, {"excess_nll", costs}};
    }
    std::printf("%s\n", out.dump().c_str());
    std::fflush(stdout);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\r%lld/%lld samples, %.1f s/sample",
                 static_cast<long long>(i - first + 1), static_cast<long long>(last - first),
                 secs / (i - first + 1));
  }
  std::fprintf(stderr, "\n");
  return 0;
}
