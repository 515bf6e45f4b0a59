// What a study knows about one trial, and the handle Ask() gives to the code that evaluates it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "hpo/search_space.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

enum class Direction { kMinimize, kMaximize };

// kStale: the worker running the trial died (no heartbeat, or its process is gone); the next Ask()
// reruns the trial under the same number with the same params. Complete and pruned trials are
// "finished"; failed trials (the objective returned an error or NaN) are not rerun.
enum class TrialState { kRunning, kStale, kComplete, kPruned, kFail };

const char* DirectionName(Direction d);    // "minimize" / "maximize"
const char* TrialStateName(TrialState s);  // "running", "stale", "complete", "pruned", "fail"

// True when a is strictly better than b in `direction`.
inline bool Better(Direction direction, double a, double b) {
  return direction == Direction::kMinimize ? a < b : a > b;
}

struct FrozenTrial {
  int64_t number = -1;
  TrialState state = TrialState::kRunning;
  std::vector<double> params;               // internal values, in space order (search_space.h)
  std::optional<double> value;              // complete: the objective; pruned: last report, if any
  std::map<int64_t, double> intermediate;   // reports of the current attempt, by step
  int attempts = 1;                         // 1 + reruns after stale attempts
  bool enqueued = false;                    // params came (at least partly) from Enqueue()
  std::string worker;                       // worker id of the current attempt (host:pid:token)
  double start_time = 0.0, end_time = 0.0;  // unix seconds of the current attempt; end 0 = open
  std::string message;                      // why it failed

  bool finished() const { return state == TrialState::kComplete || state == TrialState::kPruned; }
  std::optional<int64_t> last_step() const;
  double duration_s() const { return end_time > 0.0 ? end_time - start_time : 0.0; }
};

// A trial handed out by Study::Ask(): its number and parameter values. Cheap to copy (the space
// is shared). Accessors CHECK-fail on an unknown name or a type mismatch: those are bugs in the
// caller, which knows its own space.
class Trial {
 public:
  Trial(int64_t number, int attempt, std::vector<double> values,
        std::shared_ptr<const SearchSpace> space);

  int64_t number() const { return number_; }
  int attempt() const { return attempt_; }  // 1 for the first run, 2 after one stale rerun, ...
  const std::vector<double>& values() const { return values_; }
  const SearchSpace& space() const { return *space_; }

  double Float(absl::string_view name) const;          // float (or int) parameter
  int64_t Int(absl::string_view name) const;           // int parameter
  nlohmann::json Value(absl::string_view name) const;  // any parameter, in the user's form
  // A categorical choice as text: the string itself, or the number printed as JSON.
  std::string Choice(absl::string_view name) const;
  // {"name": value, ...} in the user's form.
  nlohmann::json ParamsJson() const;

 private:
  size_t Index(absl::string_view name) const;

  int64_t number_;
  int attempt_;
  std::vector<double> values_;
  std::shared_ptr<const SearchSpace> space_;
};

// {"name": value, ...} of internal `values` in the user's form.
nlohmann::json ParamsToJson(const SearchSpace& space, const std::vector<double>& values);

}  // namespace pmpd::hpo
