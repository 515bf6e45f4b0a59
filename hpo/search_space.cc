#include "hpo/search_space.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpo/hpo_check.h"
#include "hpo/json_util.h"

namespace pmpd::hpo {
namespace {

// Integers beyond 2^53 do not survive the trip through a double.
constexpr double kMaxExactInt = 9007199254740992.0;

bool ValidName(absl::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
    if (!ok) return false;
  }
  return true;
}

bool IsIntegral(double x) {
  return std::isfinite(x) && std::floor(x) == x && std::fabs(x) <= kMaxExactInt;
}

// Number of grid steps between low and high, or -1 when step does not divide the range.
int64_t GridSteps(double low, double high, double step) {
  const double k = (high - low) / step;
  const double rounded = std::round(k);
  if (std::fabs(k - rounded) > 1e-9 * std::max(1.0, rounded)) return -1;
  return static_cast<int64_t>(rounded);
}

std::string Where(absl::string_view origin, size_t i, absl::string_view name) {
  return name.empty() ? absl::StrCat(origin, ": params[", i, "]")
                      : absl::StrCat(origin, ": params[", i, "] (\"", name, "\")");
}

absl::Status ValidateParam(const ParamSpec& p, const std::string& where) {
  if (!ValidName(p.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, ": name must be non-empty and use only letters, digits, '_', '-', '.'"));
  }
  if (p.type == ParamType::kCategorical) {
    if (p.choices.empty())
      return absl::InvalidArgumentError(absl::StrCat(where, ": choices is empty"));
    for (size_t c = 0; c < p.choices.size(); ++c) {
      if (!p.choices[c].is_string() && !p.choices[c].is_number()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": choices[", c,
                                                       "] must be a string or a number, got ",
                                                       DumpJson(p.choices[c])));
      }
      if (p.choices[c].is_string()) {
        // The journal stores choices as JSON text, which must be UTF-8.
        try {
          (void)p.choices[c].dump();
        } catch (const nlohmann::json::exception&) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": choices[", c, "] is not valid UTF-8"));
        }
      }
      for (size_t e = 0; e < c; ++e) {
        if (p.choices[e] == p.choices[c]) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": duplicate choice ", DumpJson(p.choices[c])));
        }
      }
    }
    return absl::OkStatus();
  }
  if (!std::isfinite(p.low) || !std::isfinite(p.high)) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": low and high must be finite"));
  }
  if (!(p.low < p.high)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": low (", p.low, ") must be < high (", p.high, ")"));
  }
  if (p.log && p.low <= 0.0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": log scale needs low > 0, got low = ", p.low));
  }
  if (p.type == ParamType::kInt) {
    if (!IsIntegral(p.low) || !IsIntegral(p.high)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": int bounds must be integers (|x| <= 2^53)"));
    }
    if (!IsIntegral(p.step) || p.step < 1.0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": int step must be an integer >= 1, got ", p.step));
    }
    if (p.log && p.step != 1.0) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": log scale needs step 1"));
    }
  } else {
    if (!(p.step >= 0.0) || !std::isfinite(p.step)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": step must be > 0, got ", p.step));
    }
    if (p.log && p.step > 0.0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": log scale and step cannot be combined"));
    }
  }
  if (p.step > 0.0 && GridSteps(p.low, p.high, p.step) < 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": high - low (", p.high - p.low,
                                                   ") must be a multiple of step (", p.step, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<double> NumberField(const nlohmann::json& j, const char* key,
                                   const std::string& where, bool required, double fallback) {
  auto it = j.find(key);
  if (it == j.end()) {
    if (required) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": missing field \"", key, "\""));
    }
    return fallback;
  }
  if (!it->is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": \"", key, "\" must be a number, got ", DumpJson(*it)));
  }
  return it->get<double>();
}

absl::StatusOr<ParamSpec> ParseParam(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected an object, got ", DumpJson(j)));
  }
  ParamSpec p;
  auto name = j.find("name");
  if (name == j.end() || !name->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": missing string field \"name\""));
  }
  p.name = name->get<std::string>();
  const std::string at = absl::StrCat(where, " (\"", p.name, "\")");
  auto type = j.find("type");
  if (type == j.end() || !type->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(at, ": missing field \"type\" (float, int or categorical)"));
  }
  const std::string t = type->get<std::string>();
  std::set<std::string> allowed;
  if (t == "float" || t == "int") {
    p.type = t == "float" ? ParamType::kFloat : ParamType::kInt;
    allowed = {"name", "type", "low", "high", "step", "log"};
    absl::StatusOr<double> low = NumberField(j, "low", at, true, 0.0);
    if (!low.ok()) return low.status();
    absl::StatusOr<double> high = NumberField(j, "high", at, true, 0.0);
    if (!high.ok()) return high.status();
    absl::StatusOr<double> step = NumberField(j, "step", at, false, t == "int" ? 1.0 : 0.0);
    if (!step.ok()) return step.status();
    if (j.contains("step") && t == "float" && *step <= 0.0) {
      return absl::InvalidArgumentError(absl::StrCat(at, ": step must be > 0, got ", *step));
    }
    p.low = *low;
    p.high = *high;
    p.step = *step;
    if (auto log = j.find("log"); log != j.end()) {
      if (!log->is_boolean()) {
        return absl::InvalidArgumentError(
            absl::StrCat(at, ": \"log\" must be true or false, got ", DumpJson(*log)));
      }
      p.log = log->get<bool>();
    }
  } else if (t == "categorical") {
    p.type = ParamType::kCategorical;
    allowed = {"name", "type", "choices"};
    auto choices = j.find("choices");
    if (choices == j.end() || !choices->is_array()) {
      return absl::InvalidArgumentError(
          absl::StrCat(at, ": missing field \"choices\" (a list of strings or numbers)"));
    }
    for (const auto& c : *choices) p.choices.push_back(c);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(at, ": unknown type \"", t, "\" (expected float, int or categorical)"));
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (allowed.count(it.key()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(at, ": unknown field \"", it.key(),
                                                     "\" for type ", t, " (expected ",
                                                     absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return p;
}

}  // namespace

const char* ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kFloat:
      return "float";
    case ParamType::kInt:
      return "int";
    case ParamType::kCategorical:
      return "categorical";
  }
  return "?";
}

ParamSpec ParamSpec::Float(std::string name, double low, double high, bool log, double step) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kFloat;
  p.low = low;
  p.high = high;
  p.log = log;
  p.step = step;
  return p;
}

ParamSpec ParamSpec::Int(std::string name, int64_t low, int64_t high, int64_t step, bool log) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kInt;
  p.low = static_cast<double>(low);
  p.high = static_cast<double>(high);
  p.step = static_cast<double>(step);
  p.log = log;
  return p;
}

ParamSpec ParamSpec::Categorical(std::string name, std::vector<nlohmann::json> choices) {
  ParamSpec p;
  p.name = std::move(name);
  p.type = ParamType::kCategorical;
  p.choices = std::move(choices);
  return p;
}

absl::StatusOr<SearchSpace> SearchSpace::FromParams(std::vector<ParamSpec> params,
                                                    absl::string_view origin) {
  if (params.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": the space has no parameters"));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string where = Where(origin, i, params[i].name);
    if (absl::Status s = ValidateParam(params[i], where); !s.ok()) return s;
    for (size_t e = 0; e < i; ++e) {
      if (params[e].name == params[i].name) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": duplicate name (also params[", e, "])"));
      }
    }
  }
  SearchSpace space;
  space.params_ = std::move(params);
  return space;
}

absl::StatusOr<SearchSpace> SearchSpace::FromJson(const nlohmann::json& json,
                                                  absl::string_view origin) {
  if (!json.is_object() || !json.contains("params")) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": expected an object {\"params\": [...]}"));
  }
  for (auto it = json.begin(); it != json.end(); ++it) {
    if (it.key() != "params") {
      return absl::InvalidArgumentError(
          absl::StrCat(origin, ": unknown top-level field \"", it.key(), "\" (expected params)"));
    }
  }
  const nlohmann::json& list = json["params"];
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": \"params\" must be a list"));
  }
  std::vector<ParamSpec> params;
  for (size_t i = 0; i < list.size(); ++i) {
    absl::StatusOr<ParamSpec> p = ParseParam(list[i], Where(origin, i, ""));
    if (!p.ok()) return p.status();
    params.push_back(*std::move(p));
  }
  return FromParams(std::move(params), origin);
}

absl::StatusOr<SearchSpace> SearchSpace::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the search space file"));
  std::stringstream text;
  text << in.rdbuf();
  // nlohmann's parser stops at a NUL byte, so '{...}\0garbage' would be accepted (issue 17).
  if (const size_t nul = text.str().find('\0'); nul != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": a NUL byte at offset ", nul, " (not a JSON text file)"));
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    // e.what() carries the line and column, or the number that overflows (1e999).
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  return FromJson(json, path);
}

nlohmann::json SearchSpace::ToJson() const {
  nlohmann::json list = nlohmann::json::array();
  for (const ParamSpec& p : params_) {
    nlohmann::json j;
    j["name"] = p.name;
    j["type"] = ParamTypeName(p.type);
    if (p.type == ParamType::kCategorical) {
      j["choices"] = p.choices;
    } else if (p.type == ParamType::kInt) {
      j["low"] = static_cast<int64_t>(p.low);
      j["high"] = static_cast<int64_t>(p.high);
      if (p.step != 1.0) j["step"] = static_cast<int64_t>(p.step);
      if (p.log) j["log"] = true;
    } else {
      j["low"] = p.low;
      j["high"] = p.high;
      if (p.step > 0.0) j["step"] = p.step;
      if (p.log) j["log"] = true;
    }
    list.push_back(std::move(j));
  }
  return nlohmann::json{{"params", std::move(list)}};
}

std::optional<size_t> SearchSpace::Find(absl::string_view name) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].name == name) return i;
  }
  return std::nullopt;
}

nlohmann::json SearchSpace::ValueToJson(size_t i, double v) const {
  PMPD_HPO_CHECK(i < params_.size());
  const ParamSpec& p = params_[i];
  switch (p.type) {
    case ParamType::kFloat:
      return v;
    case ParamType::kInt:
      return static_cast<int64_t>(v);
    case ParamType::kCategorical:
      PMPD_HPO_CHECK(v >= 0 && v < static_cast<double>(p.choices.size()), "choice index in range");
      return p.choices[static_cast<size_t>(v)];
  }
  return nullptr;
}

absl::StatusOr<double> SearchSpace::ValueFromJson(size_t i, const nlohmann::json& value) const {
  PMPD_HPO_CHECK(i < params_.size());
  const ParamSpec& p = params_[i];
  const std::string where = absl::StrCat("parameter \"", p.name, "\"");
  if (p.type == ParamType::kCategorical) {
    for (size_t c = 0; c < p.choices.size(); ++c) {
      if (p.choices[c] == value) return static_cast<double>(c);
    }
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", DumpJson(value), " is not one of ",
                                                   DumpJson(nlohmann::json(p.choices))));
  }
  if (!value.is_number()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected a number, got ", DumpJson(value)));
  }
  double v = value.get<double>();
  if (!(v >= p.low && v <= p.high)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": ", DumpJson(value), " is outside [", p.low, ", ", p.high, "]"));
  }
  if (p.type == ParamType::kInt && !IsIntegral(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": expected an integer, got ", DumpJson(value)));
  }
  if (p.step > 0.0) {
    const double k = (v - p.low) / p.step;
    const double rounded = std::round(k);
    if (std::fabs(k - rounded) > 1e-9 * std::max(1.0, rounded)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", DumpJson(value), " is not on the grid low + k * ", p.step));
    }
    if (p.type == ParamType::kFloat) {
      // Snap to the exact grid value a sampler would produce.
      const int64_t n = GridSteps(p.low, p.high, p.step);
      v = static_cast<int64_t>(rounded) == n ? p.high : p.low + rounded * p.step;
    }
  }
  return v;
}

}  // namespace pmpd::hpo
