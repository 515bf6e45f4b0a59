#include "hpo/study_options.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "hpo/json_util.h"
#include "hpo/random_sampler.h"

namespace pmpd::hpo {
namespace {

// Reads the fields of a settings object one by one, collecting the first error; every field must
// be known.
class FieldReader {
 public:
  FieldReader(const nlohmann::json& json, std::string origin)
      : json_(json), origin_(std::move(origin)) {}

  template <typename T>
  void Read(const char* key, T* out) {
    known_.insert(key);
    auto it = json_.find(key);
    if (it == json_.end() || !status_.ok()) return;
    bool ok;
    if constexpr (std::is_same_v<T, bool>) {
      ok = it->is_boolean();
    } else if constexpr (std::is_integral_v<T>) {
      ok = it->is_number_integer();
    } else {
      ok = it->is_number();
    }
    if (!ok) {
      status_ = absl::InvalidArgumentError(
          absl::StrCat(origin_, ": \"", key, "\" has the wrong type: ", DumpJson(*it)));
      return;
    }
    *out = it->get<T>();
  }

  // Call after every Read: rejects unknown fields.
  absl::Status Finish() {
    if (!status_.ok()) return status_;
    for (auto it = json_.begin(); it != json_.end(); ++it) {
      if (known_.count(it.key()) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(origin_, ": unknown field \"", it.key(),
                                                       "\" (expected ", absl::StrJoin(known_, ", "),
                                                       ")"));
      }
    }
    return absl::OkStatus();
  }

 private:
  const nlohmann::json& json_;
  std::string origin_;
  std::set<std::string> known_{"type"};
  absl::Status status_;
};

absl::StatusOr<std::string> TypeOf(const nlohmann::json& json, absl::string_view origin) {
  if (!json.is_object() || !json.contains("type") || !json["type"].is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": expected an object with a string field \"type\""));
  }
  return json["type"].get<std::string>();
}

}  // namespace

std::unique_ptr<Sampler> SamplerConfig::Make() const {
  if (type == Type::kRandom) return std::make_unique<RandomSampler>();
  return std::make_unique<TpeSampler>(tpe);
}

absl::StatusOr<SamplerConfig> SamplerConfig::FromJson(const nlohmann::json& json,
                                                      absl::string_view origin) {
  absl::StatusOr<std::string> type = TypeOf(json, origin);
  if (!type.ok()) return type.status();
  SamplerConfig c;
  FieldReader r(json, std::string(origin));
  if (*type == "random") {
    c.type = Type::kRandom;
  } else if (*type == "tpe") {
    c.type = Type::kTpe;
    r.Read("n_startup_trials", &c.tpe.n_startup_trials);
    r.Read("n_ei_candidates", &c.tpe.n_ei_candidates);
    r.Read("prior_weight", &c.tpe.prior_weight);
    r.Read("multivariate", &c.tpe.multivariate);
    r.Read("constant_liar", &c.tpe.constant_liar);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": unknown sampler \"", *type, "\" (expected tpe or random)"));
  }
  if (absl::Status s = r.Finish(); !s.ok()) return s;
  if (c.tpe.n_startup_trials < 0 || c.tpe.n_ei_candidates < 1 || !(c.tpe.prior_weight > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": need n_startup_trials >= 0, n_ei_candidates >= 1 and prior_weight > 0"));
  }
  return c;
}

std::unique_ptr<Pruner> PrunerConfig::Make() const {
  switch (type) {
    case Type::kMedian:
      return std::make_unique<MedianPruner>(median);
    case Type::kSuccessiveHalving:
      return std::make_unique<SuccessiveHalvingPruner>(successive_halving);
    case Type::kNone:
      break;
  }
  return std::make_unique<NopPruner>();
}

absl::StatusOr<PrunerConfig> PrunerConfig::FromJson(const nlohmann::json& json,
                                                    absl::string_view origin) {
  absl::StatusOr<std::string> type = TypeOf(json, origin);
  if (!type.ok()) return type.status();
  PrunerConfig c;
  FieldReader r(json, std::string(origin));
  if (*type == "none") {
    c.type = Type::kNone;
  } else if (*type == "median") {
    c.type = Type::kMedian;
    MedianPrunerOptions& m = c.median;
    r.Read("n_startup_trials", &m.n_startup_trials);
    r.Read("n_warmup_steps", &m.n_warmup_steps);
    r.Read("interval_steps", &m.interval_steps);
    r.Read("n_min_trials", &m.n_min_trials);
    r.Read("best_so_far", &m.best_so_far);
    if (absl::Status s = r.Finish(); !s.ok()) return s;
    if (m.n_startup_trials < 0 || m.n_warmup_steps < 0 || m.interval_steps < 1 ||
        m.n_min_trials < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(origin,
                       ": need n_startup_trials >= 0, n_warmup_steps >= 0, "
                       "interval_steps >= 1 and n_min_trials >= 1"));
    }
  } else if (*type == "successive_halving") {
    c.type = Type::kSuccessiveHalving;
    SuccessiveHalvingOptions& h = c.successive_halving;
    r.Read("min_resource", &h.min_resource);
    r.Read("reduction_factor", &h.reduction_factor);
    r.Read("min_early_stopping_rate", &h.min_early_stopping_rate);
    if (absl::Status s = r.Finish(); !s.ok()) return s;
    if (h.min_resource < 1 || h.reduction_factor < 2 || h.min_early_stopping_rate < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          origin, ": need min_resource >= 1, reduction_factor >= 2, min_early_stopping_rate >= 0"));
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        origin, ": unknown pruner \"", *type, "\" (expected none, median or successive_halving)"));
  }
  if (absl::Status s = r.Finish(); !s.ok()) return s;
  return c;
}

absl::StatusOr<Direction> ParseDirection(absl::string_view text, absl::string_view origin) {
  if (text == "minimize") return Direction::kMinimize;
  if (text == "maximize") return Direction::kMaximize;
  return absl::InvalidArgumentError(
      absl::StrCat(origin, ": direction must be minimize or maximize, got \"", text, "\""));
}

}  // namespace pmpd::hpo
