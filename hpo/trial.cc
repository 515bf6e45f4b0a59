#include "hpo/trial.h"

#include "hpo/hpo_check.h"
#include "hpo/json_util.h"

namespace pmpd::hpo {

const char* DirectionName(Direction d) {
  return d == Direction::kMinimize ? "minimize" : "maximize";
}

const char* TrialStateName(TrialState s) {
  switch (s) {
    case TrialState::kRunning:
      return "running";
    case TrialState::kStale:
      return "stale";
    case TrialState::kComplete:
      return "complete";
    case TrialState::kPruned:
      return "pruned";
    case TrialState::kFail:
      return "fail";
  }
  return "?";
}

std::optional<int64_t> FrozenTrial::last_step() const {
  if (intermediate.empty()) return std::nullopt;
  return intermediate.rbegin()->first;
}

Trial::Trial(int64_t number, int attempt, std::vector<double> values,
             std::shared_ptr<const SearchSpace> space)
    : number_(number), attempt_(attempt), values_(std::move(values)), space_(std::move(space)) {
  PMPD_HPO_CHECK(space_ != nullptr && values_.size() == space_->size());
}

size_t Trial::Index(absl::string_view name) const {
  std::optional<size_t> i = space_->Find(name);
  if (!i.has_value()) {
    std::fprintf(stderr, "pmpd_hpo: no parameter named \"%.*s\"\n", static_cast<int>(name.size()),
                 name.data());
  }
  PMPD_HPO_CHECK(i.has_value(), "parameter name in the search space");
  return *i;
}

double Trial::Float(absl::string_view name) const {
  const size_t i = Index(name);
  PMPD_HPO_CHECK(space_->param(i).type != ParamType::kCategorical, "Float() of a categorical");
  return values_[i];
}

int64_t Trial::Int(absl::string_view name) const {
  const size_t i = Index(name);
  PMPD_HPO_CHECK(space_->param(i).type == ParamType::kInt, "Int() of a non-int parameter");
  return static_cast<int64_t>(values_[i]);
}

nlohmann::json Trial::Value(absl::string_view name) const {
  const size_t i = Index(name);
  return space_->ValueToJson(i, values_[i]);
}

std::string Trial::Choice(absl::string_view name) const {
  const size_t i = Index(name);
  PMPD_HPO_CHECK(space_->param(i).type == ParamType::kCategorical,
                 "Choice() of a number parameter");
  const nlohmann::json v = space_->ValueToJson(i, values_[i]);
  return v.is_string() ? v.get<std::string>() : DumpJson(v);
}

nlohmann::json Trial::ParamsJson() const { return ParamsToJson(*space_, values_); }

nlohmann::json ParamsToJson(const SearchSpace& space, const std::vector<double>& values) {
  PMPD_HPO_CHECK(values.size() == space.size());
  nlohmann::json j = nlohmann::json::object();
  for (size_t i = 0; i < values.size(); ++i)
    j[space.param(i).name] = space.ValueToJson(i, values[i]);
  return j;
}

}  // namespace pmpd::hpo
