// Helpers shared by the hpo study tests.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "hpo/search_space.h"
#include "hpo/study.h"
#include "hpo/study_options.h"

namespace pmpd::hpo::testing {

// A small mixed space: a float, a log int, a categorical.
inline SearchSpace MixedSpace() {
  absl::StatusOr<SearchSpace> space = SearchSpace::FromParams(
      {ParamSpec::Float("x", -3.0, 3.0), ParamSpec::Int("n", 1, 16, 1, /*log=*/true),
       ParamSpec::Categorical("c", {"a", "b", "c"})});
  EXPECT_TRUE(space.ok()) << space.status();
  return *space;
}

// Collects warnings instead of printing them; thread-safe.
class Warnings {
 public:
  std::function<void(const std::string&)> Sink() {
    return [this](const std::string& m) {
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(m);
    };
  }
  std::vector<std::string> messages() const {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_;
  }
  int Count(const std::string& needle) const {
    int n = 0;
    for (const std::string& m : messages()) n += m.find(needle) != std::string::npos;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> messages_;
};

inline std::unique_ptr<Study> OpenOrDie(const std::string& dir, const SearchSpace& space,
                                        const StudyOptions& options) {
  absl::StatusOr<std::unique_ptr<Study>> study = Study::Open(dir, space, options);
  EXPECT_TRUE(study.ok()) << study.status();
  return study.ok() ? *std::move(study) : nullptr;
}

// Trial-by-trial equality of what a run produced: state, params, value and intermediate values.
inline void ExpectSameTrials(const std::vector<FrozenTrial>& expected,
                             const std::vector<FrozenTrial>& actual, const std::string& what) {
  ASSERT_EQ(expected.size(), actual.size()) << what;
  for (size_t i = 0; i < expected.size(); ++i) {
    const FrozenTrial& e = expected[i];
    const FrozenTrial& a = actual[i];
    EXPECT_EQ(e.number, a.number) << what;
    EXPECT_EQ(e.state, a.state) << what << ", trial " << i;
    EXPECT_EQ(e.params, a.params) << what << ", trial " << i;
    EXPECT_EQ(e.value, a.value) << what << ", trial " << i;
    EXPECT_EQ(e.intermediate, a.intermediate) << what << ", trial " << i;
  }
}

}  // namespace pmpd::hpo::testing
