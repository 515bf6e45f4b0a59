#include "hpo/run_study.h"

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "hpo/hpo_check.h"

namespace pmpd::hpo {
namespace {
constexpr char kPrunedPayload[] = "pmpd.hpo/trial-pruned";
}  // namespace

absl::Status TrialPruned() {
  absl::Status s = absl::CancelledError("trial pruned");
  s.SetPayload(kPrunedPayload, absl::Cord("1"));
  return s;
}

bool IsTrialPruned(const absl::Status& status) {
  return status.GetPayload(kPrunedPayload).has_value();
}

bool TrialContext::ShouldPrune() {
  absl::StatusOr<bool> prune = study_.ShouldPrune(number());
  if (!prune.ok()) {
    study_.Warn(absl::StrCat("trial ", number(), ": pruning check failed, training goes on: ",
                             prune.status().ToString()));
    return false;
  }
  return *prune;
}

absl::Status RunStudy(Study& study, const Objective& objective, int64_t n_trials, int jobs) {
  RunOptions options;
  options.n_trials = n_trials;
  options.jobs = jobs;
  return RunStudy(study, objective, options);
}

absl::Status RunStudy(Study& study, const Objective& objective, const RunOptions& options) {
  PMPD_HPO_CHECK(options.n_trials >= 0 && options.jobs >= 1);
  const int64_t max_failed =
      options.max_failed_trials < 0 ? options.n_trials : options.max_failed_trials;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> failed{0};
  std::mutex error_mu;
  absl::Status first_error;
  auto fail = [&](absl::Status s) {
    std::lock_guard<std::mutex> lock(error_mu);
    if (first_error.ok()) first_error = std::move(s);
    stop = true;
  };

  auto worker = [&] {
    while (!stop) {
      absl::StatusOr<AskResult> asked = study.AskUnlessDone(options.n_trials);
      if (!asked.ok()) return fail(asked.status());
      if (asked->done) return;
      if (!asked->trial.has_value()) {
        std::this_thread::sleep_for(std::chrono::duration<double>(options.poll_interval_s));
        continue;
      }
      TrialContext context(study, *std::move(asked->trial));
      absl::StatusOr<double> result;
      try {
        result = objective(context);
      } catch (const std::exception& e) {
        result = absl::InternalError(absl::StrCat("objective threw: ", e.what()));
      } catch (...) {
        result = absl::InternalError("objective threw a non-standard exception");
      }
      const int64_t number = context.number();
      absl::Status told;
      if (result.ok()) {
        told = study.Tell(number, *result);
      } else if (IsTrialPruned(result.status())) {
        told = study.TellPruned(number);
      } else {
        told = study.TellFailed(number, result.status().ToString());
      }
      if (absl::IsFailedPrecondition(told)) {
        // Declared stale by another worker meanwhile; that worker reruns it.
        study.Warn(told.ToString());
        continue;
      }
      if (!told.ok()) return fail(told);
      absl::StatusOr<std::vector<FrozenTrial>> trials = study.Trials();
      if (!trials.ok()) return fail(trials.status());
      const FrozenTrial& ended = (*trials)[number];
      if (ended.state == TrialState::kFail && ++failed > max_failed) {
        return fail(
            absl::AbortedError(absl::StrCat(failed.load(), " trials failed (limit ", max_failed,
                                            "); last: trial ", number, ": ", ended.message)));
      }
      if (options.on_trial_end) options.on_trial_end(ended);
    }
  };

  if (options.jobs == 1) {
    worker();
  } else {
    std::vector<std::thread> threads;
    for (int j = 0; j < options.jobs; ++j) threads.emplace_back(worker);
    for (std::thread& t : threads) t.join();
  }
  return first_error;
}

}  // namespace pmpd::hpo
