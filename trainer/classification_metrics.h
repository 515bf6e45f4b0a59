// Classification quality for the switch-step classifiers: confusion matrix, accuracy and macro-F1
// (scikit-learn's definition: the mean F1 over the classes present in the truth or the
// predictions).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace pmpd::trainer {

struct ClassificationMetrics {
  std::vector<std::vector<int64_t>> confusion;  // [truth][predicted]
  double accuracy = 0, macro_f1 = 0;
};

// truth and predicted hold classes in [0, num_classes). O(n + num_classes^2).
ClassificationMetrics Classify(const std::vector<int>& truth, const std::vector<int>& predicted,
                               int num_classes);

// "truth\pred" table with class names, for logs.
std::string FormatConfusion(const std::vector<std::vector<int64_t>>& confusion,
                            const std::vector<std::string>& names);

}  // namespace pmpd::trainer
