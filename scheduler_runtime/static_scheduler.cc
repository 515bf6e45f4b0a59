#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "scheduler_runtime/precision_scheduler.h"

namespace pmpd::scheduler {
namespace {

class StaticScheduler : public PrecisionScheduler {
 public:
  StaticScheduler(std::vector<int> precisions, std::vector<int> steps)
      : precisions_(std::move(precisions)), steps_(std::move(steps)) {}
  void Reset() override {}
  absl::Status OnPrefill(const inference::KvView&) override { return absl::OkStatus(); }
  int NextPrecision(int step, int, absl::Span<const float>) override {
    // Number of switch points at or before `step`; O(pairs).
    size_t i = 0;
    while (i < steps_.size() && step >= steps_[i]) ++i;
    return precisions_[i];
  }
  const std::vector<int>& precisions() const override { return precisions_; }
  std::string Describe() const override {
    return absl::StrCat(
        "static precisions ", absl::StrJoin(precisions_, ","),
        steps_.empty() ? "" : absl::StrCat(" switch steps ", absl::StrJoin(steps_, ",")));
  }

 private:
  std::vector<int> precisions_, steps_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PrecisionScheduler>> MakeStaticScheduler(
    std::vector<int> precisions, std::vector<int> switch_steps) {
  if (auto st = CheckPrecisionLadder(precisions, 1); !st.ok()) return st;
  if (switch_steps.size() + 1 != precisions.size()) {
    return absl::InvalidArgumentError(absl::StrCat("switch steps: need ", precisions.size() - 1,
                                                   " value(s) for ", precisions.size(),
                                                   " precisions, got ", switch_steps.size()));
  }
  for (size_t i = 0; i < switch_steps.size(); ++i) {
    if (switch_steps[i] < 0 || (i > 0 && switch_steps[i] < switch_steps[i - 1])) {
      return absl::InvalidArgumentError(
          absl::StrCat("switch steps must be non-negative and non-decreasing (equal steps skip a "
                       "precision), got ",
                       absl::StrJoin(switch_steps, ",")));
    }
  }
  return std::unique_ptr<PrecisionScheduler>(
      new StaticScheduler(std::move(precisions), std::move(switch_steps)));
}

absl::Status CheckPrecisionLadder(const std::vector<int>& precisions, size_t min_size,
                                  const std::string& what) {
  bool ok = precisions.size() >= min_size && !precisions.empty();
  for (size_t i = 0; ok && i < precisions.size(); ++i) {
    ok = precisions[i] >= 2 && precisions[i] <= 8 && (i == 0 || precisions[i] < precisions[i - 1]);
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", precisions.empty() ? "(none)" : absl::StrJoin(precisions, ","),
                   ": need ", min_size > 1 ? absl::StrCat("at least ", min_size, " ") : "",
                   "bit widths in 2..8, strictly decreasing (high to low, e.g. 4,3,2)"));
}

absl::StatusOr<std::vector<int>> ParsePrecisionLadder(const std::string& text, size_t min_size,
                                                      const std::string& what) {
  auto p = ParseIntList(text, what);
  if (!p.ok()) return p.status();
  if (auto st = CheckPrecisionLadder(*p, min_size, what); !st.ok()) return st;
  return p;
}

absl::StatusOr<std::vector<int>> ParseIntList(const std::string& text, const std::string& flag) {
  std::vector<int> out;
  if (text.empty()) return out;
  for (absl::string_view item : absl::StrSplit(text, ',')) {
    int v;
    if (!absl::SimpleAtoi(item, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, ": \"", item, "\" is not an integer (expected e.g. 4,3,2)"));
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace pmpd::scheduler
