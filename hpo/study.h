// A study: the ask/tell interface over a journal that holds its whole state.
//
// Journal (journal.h for the line format) of study directory DIR: DIR/journal.jsonl. Records:
//   {"op":"study", "format":"pmpd-hpo-journal", "version":1, "space":{...}, "direction":..,
//    "seed":.., "sampler":{...}, "pruner":{...}, "t":..}                       first line only
//   {"op":"enqueue", "params":{...}}                       a point to try first (may be partial)
//   {"op":"trial", "number":n, "params":{...}, "worker":w, "t":.., ["enqueued":i]}  created+started
//   {"op":"report", "number":n, "step":k, "value":v}       intermediate value (null = NaN)
//   {"op":"finish", "number":n, "state":"complete"|"pruned"|"fail", ["value":v], ["message":..],
//   "t":..}
//   {"op":"heartbeat", "worker":w, "t":..}                 the worker w is alive
//   {"op":"stale", "number":n, "reason":.., "t":..}        the running attempt of n died
//   {"op":"retry", "number":n, "worker":w, "t":..}         n reruns with the same params
// Times are unix seconds; a worker id is "host:pid:token" (token: per Study object).
//
// Recovery and reproducibility. Kill any worker at any time and rerun the same command: the study
// continues. A running trial whose worker is dead (a process of this host that no longer exists, a
// closed Study of this process, or no heartbeat for stale_timeout_s) is marked stale and rerun
// under the same number with the same params before any new trial is created. Trial n's params are
// drawn from its own stream Rng::TrialSeed(seed, n), so with one sequential worker a resumed study
// gives trial for trial the params and values of an uninterrupted one (given a deterministic
// objective). With parallel workers the history a trial sees depends on timing, so only uniqueness
// of numbers and completeness of records are guaranteed.
//
// Thread safety: every method may be called from any thread; each takes the study's mutex and the
// journal's file lock for its read-new-records + append transaction, so trial numbers are never
// handed out twice, by threads or by processes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hpo/journal.h"
#include "hpo/pruners.h"
#include "hpo/sampler.h"
#include "hpo/search_space.h"
#include "hpo/study_options.h"
#include "hpo/trial.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

// The journal file of study directory `dir`.
std::string JournalPath(const std::string& dir);

// What AskUnlessDone found: a trial to run, or that the study has its trials (done), or neither:
// the missing trials are running in other workers (poll again: one of them may fail or die).
struct AskResult {
  std::optional<Trial> trial;
  bool done = false;
};

class Study {
 public:
  // Opens the study in `dir` (created, with its journal, when absent or empty) or resumes it. A
  // journal made with another space, direction, seed, sampler or pruner is an error naming the
  // field; so are I/O errors and corrupted records (with file:line). Blocks on the journal lock.
  static absl::StatusOr<std::unique_ptr<Study>> Open(const std::string& dir,
                                                     const SearchSpace& space,
                                                     StudyOptions options);
  // Opens an existing study taking space, direction, seed, sampler and pruner from its journal
  // (options supplies only the per-process settings). For reports and for `--resume DIR`.
  static absl::StatusOr<std::unique_ptr<Study>> OpenExisting(const std::string& dir,
                                                             StudyOptions options = {});
  // A study without a journal (benchmarks, tests); the same code paths minus the file.
  static std::unique_ptr<Study> InMemory(const SearchSpace& space, StudyOptions options);

  // Stops the heartbeat. Trials this object still runs stay "running" in the journal and are
  // rerun by the next Ask() of anyone (this process's other Study objects included).
  ~Study();
  Study(const Study&) = delete;
  Study& operator=(const Study&) = delete;

  // Queues a point (all or some params, {"name": value}) to be handed out before sampled ones;
  // missing params are sampled. A point already queued is not queued again, so rerunning the same
  // command does not duplicate warm starts. Errors name the bad param.
  absl::Status Enqueue(const nlohmann::json& params);

  // A new running trial: first a stale trial to rerun, then an enqueued point, then a sampled one.
  // Holds the lock while sampling (TPE: O(params * 24 * trials)).
  absl::StatusOr<Trial> Ask();
  // Like Ask, but only while fewer than n_trials trials are finished (complete + pruned) or
  // running; see AskResult.
  absl::StatusOr<AskResult> AskUnlessDone(int64_t n_trials);

  // Ends trial `number`, which must be running in this Study object. A NaN or infinite value makes
  // the trial fail (with a warning) instead. FailedPrecondition if another worker took it over.
  absl::Status Tell(int64_t number, double value);
  // Pruned; its value is its last intermediate value (if any).
  absl::Status TellPruned(int64_t number);
  absl::Status TellFailed(int64_t number, absl::string_view message);
  // Records the intermediate value at `step` (>= 0). A step reported twice keeps the first value
  // (warning), as Optuna does.
  absl::Status Report(int64_t number, int64_t step, double value);
  // Asks the pruner about running trial `number`, after reading what other workers appended.
  absl::StatusOr<bool> ShouldPrune(int64_t number);

  // Every trial in number order, after reading what other workers appended.
  absl::StatusOr<std::vector<FrozenTrial>> Trials();
  // The best complete trial, if any.
  absl::StatusOr<std::optional<FrozenTrial>> BestTrial();

  const SearchSpace& space() const { return *space_; }
  std::shared_ptr<const SearchSpace> shared_space() const { return space_; }
  const StudyOptions& options() const { return options_; }
  const std::string& worker_id() const { return worker_id_; }
  // Empty for an in-memory study.
  std::string journal_path() const;
  // Passes a warning to options().warn (default: stderr). Never blocks on the study.
  void Warn(const std::string& message) const;

 private:
  Study(std::shared_ptr<const SearchSpace> space, StudyOptions options,
        std::unique_ptr<Journal> journal);

  static absl::StatusOr<std::unique_ptr<Study>> OpenImpl(const std::string& dir,
                                                         const SearchSpace* space,
                                                         StudyOptions options);
  // Runs fn under the mutex and the journal lock, after applying the records others appended.
  template <typename Fn>
  absl::Status Transact(Fn&& fn);
  absl::Status Refresh();
  // Appends (when journaled) and applies one record. Under Transact only.
  absl::Status Write(nlohmann::json record);
  // Applies one record to the in-memory state; errors describe an inconsistent journal.
  absl::Status Apply(const nlohmann::json& record, int64_t line);
  absl::StatusOr<FrozenTrial*> MyRunningTrial(int64_t number, absl::string_view action);
  absl::Status MarkStaleTrials();
  // Why `t`'s worker counts as dead now, or nothing while it may be alive.
  std::optional<std::string> DeadWorkerReason(const FrozenTrial& t, double now) const;
  absl::StatusOr<AskResult> AskLocked(int64_t n_trials);
  absl::Status Finish(int64_t number, TrialState state, std::optional<double> value,
                      absl::string_view message);
  void HeartbeatLoop();

  std::shared_ptr<const SearchSpace> space_;
  StudyOptions options_;
  std::unique_ptr<Journal> journal_;
  std::unique_ptr<Sampler> sampler_;
  std::unique_ptr<Pruner> pruner_;
  std::string host_;
  std::string token_;
  std::string worker_id_;

  mutable std::mutex mu_;
  std::vector<FrozenTrial> trials_;
  struct Queued {
    nlohmann::json params;  // canonical user form, as journaled
    bool used = false;
  };
  std::vector<Queued> queue_;
  std::map<std::string, double> heartbeats_;  // worker id -> latest heartbeat time
  absl::Status broken_;  // set when another worker's records could not be applied; sticky

  std::thread heartbeat_thread_;
  std::mutex heartbeat_mu_;  // guards stopping_ only
  std::condition_variable heartbeat_cv_;
  bool stopping_ = false;
};

}  // namespace pmpd::hpo
