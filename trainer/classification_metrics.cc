#include "trainer/classification_metrics.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "kernels/check.h"

namespace pmpd::trainer {

ClassificationMetrics Classify(const std::vector<int>& truth, const std::vector<int>& predicted,
                               int num_classes) {
  PMPD_CHECK(truth.size() == predicted.size());
  ClassificationMetrics m;
  m.confusion.assign(num_classes, std::vector<int64_t>(num_classes, 0));
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i) {
    PMPD_CHECK(truth[i] >= 0 && truth[i] < num_classes && predicted[i] >= 0 &&
               predicted[i] < num_classes);
    ++m.confusion[truth[i]][predicted[i]];
    correct += truth[i] == predicted[i];
  }
  m.accuracy = truth.empty() ? 0 : static_cast<double>(correct) / truth.size();
  double f1_sum = 0;
  int classes = 0;
  for (int c = 0; c < num_classes; ++c) {
    int64_t tp = m.confusion[c][c], in_truth = 0, in_pred = 0;
    for (int o = 0; o < num_classes; ++o) {
      in_truth += m.confusion[c][o];
      in_pred += m.confusion[o][c];
    }
    if (in_truth == 0 && in_pred == 0) continue;  // absent from both: not part of the average
    ++classes;
    f1_sum += 2.0 * tp / static_cast<double>(in_truth + in_pred);  // F1 = 2TP / (2TP + FP + FN)
  }
  m.macro_f1 = classes > 0 ? f1_sum / classes : 0;
  return m;
}

std::string FormatConfusion(const std::vector<std::vector<int64_t>>& confusion,
                            const std::vector<std::string>& names) {
  std::string out = absl::StrFormat("%12s", "truth\\pred");
  for (const auto& n : names) out += absl::StrFormat("%10s", n);
  out += "\n";
  for (size_t r = 0; r < confusion.size(); ++r) {
    out += absl::StrFormat("%12s", r < names.size() ? names[r] : "?");
    for (int64_t v : confusion[r]) out += absl::StrFormat("%10d", v);
    out += "\n";
  }
  return out;
}

}  // namespace pmpd::trainer
