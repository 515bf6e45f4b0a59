// The search space: named float, int and categorical parameters, built in code or read from JSON.
//
// JSON format (a file holds one object; parameter order is significant: it is the order in
// which samplers draw, so reordering the file changes the study):
//   {"params": [
//     {"name": "lr",      "type": "float", "low": 1e-5, "high": 0.1, "log": true},
//     {"name": "dropout", "type": "float", "low": 0.0,  "high": 0.5, "step": 0.05},
//     {"name": "hidden",  "type": "int",   "low": 32,   "high": 512, "step": 32},
//     {"name": "layers",  "type": "int",   "low": 1,    "high": 64,  "log": true},
//     {"name": "act",     "type": "categorical", "choices": ["relu", "gelu"]},
//     {"name": "bits",    "type": "categorical", "choices": [2, 3, 4]}
//   ]}
// Rules: low < high (inclusive bounds); log needs low > 0 and no step (int log has step 1);
// a step must divide high - low; int bounds and steps are integers; choices are a non-empty list of
// distinct strings or numbers (unordered: 2 and 4 are no closer than 2 and "relu"); names are
// unique and use [A-Za-z0-9_.-]; unknown fields are errors (a typo must not pass silently).
//
// Values: a sampler works on "internal" doubles, one per parameter in space order: the value
// itself for float/int, the choice index for categoricals. ValueToJson/ValueFromJson convert to the
// user's form (number or choice).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

enum class ParamType { kFloat, kInt, kCategorical };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::kFloat;
  double low = 0.0, high = 0.0;         // float/int: inclusive bounds
  double step = 0.0;                    // 0: continuous float; int: >= 1
  bool log = false;                     // float/int: sample and model in log space
  std::vector<nlohmann::json> choices;  // categorical: strings or numbers

  static ParamSpec Float(std::string name, double low, double high, bool log = false,
                         double step = 0.0);
  static ParamSpec Int(std::string name, int64_t low, int64_t high, int64_t step = 1,
                       bool log = false);
  static ParamSpec Categorical(std::string name, std::vector<nlohmann::json> choices);

  // True for values on a grid (int, or float with a step): samplers give them +-step/2 cells.
  bool discrete() const { return type == ParamType::kInt || step > 0.0; }
};

class SearchSpace {
 public:
  SearchSpace() = default;

  // Validates `params` (rules above); errors name `origin`, the parameter and the problem.
  static absl::StatusOr<SearchSpace> FromParams(std::vector<ParamSpec> params,
                                                absl::string_view origin = "search space");
  static absl::StatusOr<SearchSpace> FromJson(const nlohmann::json& json,
                                              absl::string_view origin = "search space");
  // Reads and validates a space file; errors start with `path`.
  static absl::StatusOr<SearchSpace> FromFile(const std::string& path);

  // The canonical JSON form (what FromJson reads; stored in the study journal).
  nlohmann::json ToJson() const;

  size_t size() const { return params_.size(); }
  const ParamSpec& param(size_t i) const { return params_[i]; }
  const std::vector<ParamSpec>& params() const { return params_; }
  std::optional<size_t> Find(absl::string_view name) const;

  // The user-facing value of internal value `v` of parameter i: a number or a choice.
  nlohmann::json ValueToJson(size_t i, double v) const;
  // The internal value of a user-facing value; an error (naming the parameter) when it is out of
  // bounds, off the grid, not a choice or of the wrong kind.
  absl::StatusOr<double> ValueFromJson(size_t i, const nlohmann::json& value) const;

 private:
  std::vector<ParamSpec> params_;
};

// "float", "int", "categorical".
const char* ParamTypeName(ParamType type);

}  // namespace pmpd::hpo
