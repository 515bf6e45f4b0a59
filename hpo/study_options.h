// The settings of a study. The first group (direction, seed, sampler, pruner, objective context)
// defines the study and is stored in the journal header; reopening with other values is an error.
// The second group is per process (how this worker behaves) and is not stored.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hpo/pruners.h"
#include "hpo/sampler.h"
#include "hpo/tpe_sampler.h"
#include "hpo/trial.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

struct SamplerConfig {
  enum class Type { kTpe, kRandom };
  Type type = Type::kTpe;
  TpeOptions tpe;  // used when type == kTpe

  std::unique_ptr<Sampler> Make() const;
  // {"type": "tpe", "n_startup_trials": 10, ...} or {"type": "random"}; the journal's form.
  nlohmann::json ToJson() const { return Make()->ToJson(); }
  // The inverse of ToJson; missing fields keep their defaults, unknown ones are errors naming
  // `origin` and the field.
  static absl::StatusOr<SamplerConfig> FromJson(const nlohmann::json& json,
                                                absl::string_view origin);
};

struct PrunerConfig {
  enum class Type { kNone, kMedian, kSuccessiveHalving };
  Type type = Type::kNone;
  MedianPrunerOptions median;                   // used when type == kMedian
  SuccessiveHalvingOptions successive_halving;  // used when type == kSuccessiveHalving

  std::unique_ptr<Pruner> Make() const;
  // {"type": "none"}, {"type": "median", ...} or {"type": "successive_halving", ...}.
  nlohmann::json ToJson() const { return Make()->ToJson(); }
  static absl::StatusOr<PrunerConfig> FromJson(const nlohmann::json& json,
                                               absl::string_view origin);
};

struct StudyOptions {
  // --- Stored in the journal header. ---
  Direction direction = Direction::kMinimize;
  uint64_t seed = 0;  // trial n draws from Rng(Rng::TrialSeed(seed, n))
  SamplerConfig sampler;
  PrunerConfig pruner;
  // What the objective depends on besides the searched parameters (the data file, the training
  // options the caller holds fixed...), as a JSON object the caller builds: trials made under other
  // settings are not comparable, so reopening with a different context is an error naming the
  // fields that differ. null: none recorded. Journals written before this field existed have none
  // and open with any context.
  nlohmann::json objective_context = nullptr;

  // --- Per process. ---
  // A worker with running trials appends a heartbeat record this often (0: never).
  double heartbeat_interval_s = 5.0;
  // A running trial of a worker on another host (or of a live process on this host) is stale once
  // its worker's last heartbeat is older than this. Trials of dead processes on this host are
  // stale at once (the pid is checked). Hosts sharing a journal need roughly synchronised clocks.
  double stale_timeout_s = 60.0;
  std::string host;  // this worker's host name; empty: gethostname()
  bool sync = true;  // fsync after every journal record; off only for tests and benchmarks
  // Receives warnings (torn journal line recovered, NaN objective, ...); default: stderr.
  std::function<void(const std::string&)> warn;
};

// "minimize"/"maximize" to Direction; an error naming `origin` otherwise.
absl::StatusOr<Direction> ParseDirection(absl::string_view text, absl::string_view origin);

}  // namespace pmpd::hpo
