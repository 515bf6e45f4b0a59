#include "hpo/study.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "hpo/hpo_check.h"
#include "hpo/json_util.h"
#include "hpo/rng.h"

namespace pmpd::hpo {
namespace {

constexpr int kJournalVersion = 1;
constexpr char kJournalFormat[] = "pmpd-hpo-journal";

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Tokens of the Study objects alive in this process: a trial whose worker has this process's pid
// but an unregistered token belongs to a Study that was closed (or to a run before a fork).
std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::set<std::string>& LiveTokens() {
  static std::set<std::string> tokens;
  return tokens;
}

std::string NewToken() {
  std::random_device rd;
  const uint64_t a = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  static std::atomic<uint64_t> counter{0};
  return absl::StrFormat("%016x", a ^ (counter++ * 0x9e3779b97f4a7c15ULL));
}

std::string HostName() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// "host:pid:token" -> parts; false when malformed.
bool ParseWorker(const std::string& worker, std::string* host, int64_t* pid, std::string* token) {
  const size_t b = worker.rfind(':');
  if (b == std::string::npos || b == 0) return false;
  const size_t a = worker.rfind(':', b - 1);
  if (a == std::string::npos) return false;
  *host = worker.substr(0, a);
  *token = worker.substr(b + 1);
  const std::string pid_text = worker.substr(a + 1, b - a - 1);
  if (pid_text.empty()) return false;
  *pid = 0;
  for (char c : pid_text) {
    if (c < '0' || c > '9') return false;
    *pid = *pid * 10 + (c - '0');
  }
  return true;
}

// Parses a {"name": value} object against the space; missing names stay nullopt unless required.
absl::StatusOr<std::vector<std::optional<double>>> ParseParams(const SearchSpace& space,
                                                               const nlohmann::json& params,
                                                               bool require_all) {
  if (!params.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("params must be an object, got ", DumpJson(params)));
  }
  std::vector<std::optional<double>> values(space.size());
  for (auto it = params.begin(); it != params.end(); ++it) {
    std::optional<size_t> i = space.Find(it.key());
    if (!i.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown parameter \"", it.key(), "\" (not in the search space)"));
    }
    absl::StatusOr<double> v = space.ValueFromJson(*i, it.value());
    if (!v.ok()) return v.status();
    values[*i] = *v;
  }
  if (require_all) {
    for (size_t i = 0; i < space.size(); ++i) {
      if (!values[i].has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("parameter \"", space.param(i).name, "\" is missing"));
      }
    }
  }
  return values;
}

// The fields in which two objective contexts differ, in words ("balance: \"none\" in the journal,
// \"weighted\" now; ..."), or the two values whole when either is not an object.
std::string ContextDifference(const nlohmann::json& journal, const nlohmann::json& now) {
  if (!journal.is_object() || !now.is_object()) {
    return absl::StrCat(DumpJson(journal), " in the journal, ", DumpJson(now), " now");
  }
  std::vector<std::string> parts;
  auto show = [](const nlohmann::json& o, const std::string& key) {
    return o.contains(key) ? DumpJson(o[key]) : std::string("absent");
  };
  std::set<std::string> keys;
  for (const auto& item : journal.items()) keys.insert(item.key());
  for (const auto& item : now.items()) keys.insert(item.key());
  for (const std::string& k : keys) {
    if (show(journal, k) != show(now, k)) {
      parts.push_back(
          absl::StrCat(k, ": ", show(journal, k), " in the journal, ", show(now, k), " now"));
    }
  }
  return absl::StrJoin(parts, "; ");
}

// The first difference between two spaces, in words.
std::string SpaceDifference(const SearchSpace& journal, const SearchSpace& given) {
  if (journal.size() != given.size()) {
    return absl::StrCat("the journal's space has ", journal.size(), " parameters, the given one ",
                        given.size());
  }
  const nlohmann::json a = journal.ToJson()["params"];
  const nlohmann::json b = given.ToJson()["params"];
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] != b[i]) {
      return absl::StrCat("params[", i, "] is ", DumpJson(a[i]), " in the journal but ",
                          DumpJson(b[i]), " in the given space");
    }
  }
  return "they differ";
}

template <typename T>
absl::StatusOr<T> Field(const nlohmann::json& record, const char* key) {
  auto it = record.find(key);
  if (it == record.end()) return absl::DataLossError(absl::StrCat("missing field \"", key, "\""));
  bool ok;
  if constexpr (std::is_same_v<T, std::string>) {
    ok = it->is_string();
  } else if constexpr (std::is_integral_v<T>) {
    ok = it->is_number_integer();
  } else {
    ok = it->is_number();
  }
  if (!ok) return absl::DataLossError(absl::StrCat("field \"", key, "\" has the wrong type"));
  return it->get<T>();
}

#define PMPD_HPO_ASSIGN(lhs, expr)              \
  auto lhs##_or = (expr);                       \
  if (!lhs##_or.ok()) return lhs##_or.status(); \
  auto lhs = *std::move(lhs##_or)

}  // namespace

std::string JournalPath(const std::string& dir) { return dir + "/journal.jsonl"; }

Study::Study(std::shared_ptr<const SearchSpace> space, StudyOptions options,
             std::unique_ptr<Journal> journal)
    : space_(std::move(space)), options_(std::move(options)), journal_(std::move(journal)) {
  sampler_ = options_.sampler.Make();
  pruner_ = options_.pruner.Make();
  host_ = options_.host.empty() ? HostName() : options_.host;
  // The worker id is parsed back from the journal ("host:pid:token"), so keep it plain.
  for (char& c : host_) {
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '-' || c == '_';
    if (!plain) c = '_';
  }
  token_ = NewToken();
  worker_id_ = absl::StrCat(host_, ":", ::getpid(), ":", token_);
  std::lock_guard<std::mutex> lock(RegistryMutex());
  LiveTokens().insert(token_);
}

Study::~Study() {
  {
    std::lock_guard<std::mutex> lock(heartbeat_mu_);
    stopping_ = true;
  }
  heartbeat_cv_.notify_all();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  std::lock_guard<std::mutex> lock(RegistryMutex());
  LiveTokens().erase(token_);
}

std::string Study::journal_path() const { return journal_ ? journal_->path() : std::string(); }

void Study::Warn(const std::string& message) const {
  if (options_.warn) {
    options_.warn(message);
  } else {
    std::fprintf(stderr, "pmpd_hpo: warning: %s\n", message.c_str());
  }
}

std::unique_ptr<Study> Study::InMemory(const SearchSpace& space, StudyOptions options) {
  return std::unique_ptr<Study>(
      new Study(std::make_shared<const SearchSpace>(space), std::move(options), nullptr));
}

absl::StatusOr<std::unique_ptr<Study>> Study::Open(const std::string& dir, const SearchSpace& space,
                                                   StudyOptions options) {
  return OpenImpl(dir, &space, std::move(options));
}

absl::StatusOr<std::unique_ptr<Study>> Study::OpenExisting(const std::string& dir,
                                                           StudyOptions options) {
  return OpenImpl(dir, nullptr, std::move(options));
}

absl::StatusOr<std::unique_ptr<Study>> Study::OpenImpl(const std::string& dir,
                                                       const SearchSpace* space,
                                                       StudyOptions options) {
  const std::string path = JournalPath(dir);
  struct stat st;
  if (space == nullptr) {
    if (::stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat(dir, ": no study here (", path, " is missing)"));
    }
  } else if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    return absl::InternalError(
        absl::StrCat(dir, ": cannot create the study directory: ", std::strerror(errno)));
  }
  Journal::WarnFn warn = options.warn;
  if (!warn)
    warn = [](const std::string& m) { std::fprintf(stderr, "pmpd_hpo: warning: %s\n", m.c_str()); };
  PMPD_HPO_ASSIGN(journal, Journal::Open(path, options.sync, warn));
  if (absl::Status s = journal->Lock(); !s.ok()) return s;
  // The lock is released on every path out: by hand below, or with the journal on error.
  absl::StatusOr<std::vector<JournalRecord>> records = journal->ReadNew();
  if (!records.ok()) return records.status();

  std::shared_ptr<const SearchSpace> study_space;
  if (records->empty()) {
    if (space == nullptr) return absl::NotFoundError(absl::StrCat(path, ": the journal is empty"));
    study_space = std::make_shared<const SearchSpace>(*space);
    nlohmann::json header = {{"op", "study"},
                             {"format", kJournalFormat},
                             {"version", kJournalVersion},
                             {"space", space->ToJson()},
                             {"direction", DirectionName(options.direction)},
                             {"seed", options.seed},
                             {"sampler", options.sampler.ToJson()},
                             {"pruner", options.pruner.ToJson()},
                             {"t", NowSeconds()}};
    if (!options.objective_context.is_null()) header["objective"] = options.objective_context;
    absl::StatusOr<int64_t> line = journal->Append(header);
    if (!line.ok()) return line.status();
    // Make the new file's directory entry durable too.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      if (options.sync) ::fsync(dfd);
      ::close(dfd);
    }
  } else {
    const nlohmann::json& h = records->front().json;
    const std::string at = absl::StrCat(path, ":1");
    if (StringOr(h, "op", "") != "study" || StringOr(h, "format", "") != kJournalFormat) {
      return absl::DataLossError(
          absl::StrCat(at, ": the first record is not a pmpd-hpo study header"));
    }
    if (IntOr(h, "version", 0) != kJournalVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat(at, ": journal version ", IntOr(h, "version", 0),
                       ", this build reads version ", kJournalVersion));
    }
    if (!h.contains("space") || !h.contains("direction") || !h.contains("seed") ||
        !h.contains("sampler") || !h.contains("pruner") || !h["direction"].is_string() ||
        !h["seed"].is_number_unsigned()) {
      return absl::DataLossError(absl::StrCat(at,
                                              ": study header lacks space, direction, seed, "
                                              "sampler or pruner"));
    }
    PMPD_HPO_ASSIGN(journal_space, SearchSpace::FromJson(h["space"], absl::StrCat(at, ": space")));
    PMPD_HPO_ASSIGN(direction, ParseDirection(h["direction"].get<std::string>(), at));
    const uint64_t seed = h["seed"].get<uint64_t>();
    PMPD_HPO_ASSIGN(sampler, SamplerConfig::FromJson(h["sampler"], absl::StrCat(at, ": sampler")));
    PMPD_HPO_ASSIGN(pruner, PrunerConfig::FromJson(h["pruner"], absl::StrCat(at, ": pruner")));
    if (space != nullptr) {
      const std::string hint = " (use the same settings to resume, or another study directory)";
      if (journal_space.ToJson() != space->ToJson()) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": this study was created with another search space: ",
                         SpaceDifference(journal_space, *space), hint));
      }
      if (direction != options.direction) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": direction is ", DirectionName(direction), " in the journal, ",
                         DirectionName(options.direction), " in the options", hint));
      }
      if (seed != options.seed) {
        return absl::FailedPreconditionError(absl::StrCat(
            path, ": seed is ", seed, " in the journal, ", options.seed, " in the options", hint));
      }
      if (sampler.ToJson() != options.sampler.ToJson()) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": sampler is ", DumpJson(sampler.ToJson()), " in the journal, ",
                         DumpJson(options.sampler.ToJson()), " in the options", hint));
      }
      if (pruner.ToJson() != options.pruner.ToJson()) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": pruner is ", DumpJson(pruner.ToJson()), " in the journal, ",
                         DumpJson(options.pruner.ToJson()), " in the options", hint));
      }
      if (h.contains("objective") && h["objective"] != options.objective_context) {
        return absl::FailedPreconditionError(
            absl::StrCat(path, ": this study's trials were made with other objective settings: ",
                         ContextDifference(h["objective"], options.objective_context), hint));
      }
    }
    if (h.contains("objective")) options.objective_context = h["objective"];
    options.direction = direction;
    options.seed = seed;
    options.sampler = sampler;
    options.pruner = pruner;
    study_space = std::make_shared<const SearchSpace>(std::move(journal_space));
  }
  std::unique_ptr<Study> study(new Study(study_space, std::move(options), std::move(journal)));
  for (size_t i = 1; i < records->size(); ++i) {  // after the header
    const JournalRecord& r = (*records)[i];
    if (absl::Status s = study->Apply(r.json, r.line); !s.ok()) return s;
  }
  study->journal_->Unlock();
  if (study->options_.heartbeat_interval_s > 0.0) {
    study->heartbeat_thread_ = std::thread([s = study.get()] { s->HeartbeatLoop(); });
  }
  return study;
}

template <typename Fn>
absl::Status Study::Transact(Fn&& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!broken_.ok()) return broken_;
  if (journal_) {
    if (absl::Status s = journal_->Lock(); !s.ok()) return s;
  }
  absl::Status status = Refresh();
  if (status.ok()) status = fn();
  if (journal_) journal_->Unlock();
  return status;
}

absl::Status Study::Refresh() {
  if (!journal_) return absl::OkStatus();
  PMPD_HPO_ASSIGN(records, journal_->ReadNew());
  for (const JournalRecord& r : records) {
    if (absl::Status s = Apply(r.json, r.line); !s.ok()) {
      // Part of the batch is applied and the file offset has moved on: no way back.
      broken_ = s;
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status Study::Write(nlohmann::json record) {
  // Apply what the file will hold, parsed back, so a resumed study (which only has the file)
  // holds bit-identical values.
  const nlohmann::json stored = nlohmann::json::parse(DumpJson(record));
  int64_t line = 0;
  if (journal_) {
    PMPD_HPO_ASSIGN(appended, journal_->Append(stored));
    line = appended;
  }
  const absl::Status applied = Apply(stored, line);
  if (!applied.ok()) std::fprintf(stderr, "pmpd_hpo: %s\n", applied.ToString().c_str());
  PMPD_HPO_CHECK(applied.ok(), "a record this study wrote must apply");
  return absl::OkStatus();
}

absl::Status Study::Apply(const nlohmann::json& record, int64_t line) {
  auto bad = [&](absl::string_view problem) {
    return absl::DataLossError(absl::StrCat(journal_ ? journal_->path() : "in-memory study", ":",
                                            line, ": inconsistent record: ", problem));
  };
  auto field_error = [&](const absl::Status& s) { return bad(s.message()); };
  absl::StatusOr<std::string> op = Field<std::string>(record, "op");
  if (!op.ok()) return field_error(op.status());

  if (*op == "heartbeat") {
    absl::StatusOr<std::string> worker = Field<std::string>(record, "worker");
    absl::StatusOr<double> t = Field<double>(record, "t");
    if (!worker.ok() || !t.ok()) return bad("heartbeat needs worker and t");
    double& last = heartbeats_[*worker];
    last = std::max(last, *t);
    return absl::OkStatus();
  }
  if (*op == "enqueue") {
    if (!record.contains("params")) return bad("enqueue without params");
    absl::StatusOr<std::vector<std::optional<double>>> values =
        ParseParams(*space_, record["params"], /*require_all=*/false);
    if (!values.ok()) return field_error(values.status());
    queue_.push_back({record["params"], false});
    return absl::OkStatus();
  }
  absl::StatusOr<int64_t> number = Field<int64_t>(record, "number");
  if (!number.ok()) return field_error(number.status());
  if (*op == "trial") {
    if (*number != static_cast<int64_t>(trials_.size())) {
      return bad(
          absl::StrCat("trial ", *number, " out of sequence (expected ", trials_.size(), ")"));
    }
    absl::StatusOr<std::string> worker = Field<std::string>(record, "worker");
    absl::StatusOr<double> t = Field<double>(record, "t");
    if (!worker.ok() || !t.ok() || !record.contains("params"))
      return bad("trial needs params, worker, t");
    absl::StatusOr<std::vector<std::optional<double>>> values =
        ParseParams(*space_, record["params"], /*require_all=*/true);
    if (!values.ok()) return field_error(values.status());
    FrozenTrial trial;
    trial.number = *number;
    trial.state = TrialState::kRunning;
    for (const auto& v : *values) trial.params.push_back(*v);
    trial.worker = *worker;
    trial.start_time = *t;
    if (record.contains("enqueued")) {
      absl::StatusOr<int64_t> q = Field<int64_t>(record, "enqueued");
      if (!q.ok() || *q < 0 || *q >= static_cast<int64_t>(queue_.size()) || queue_[*q].used) {
        return bad("enqueued names no pending queued point");
      }
      queue_[*q].used = true;
      trial.enqueued = true;
    }
    trials_.push_back(std::move(trial));
    return absl::OkStatus();
  }
  if (*number < 0 || *number >= static_cast<int64_t>(trials_.size())) {
    return bad(absl::StrCat("no trial ", *number));
  }
  FrozenTrial& trial = trials_[*number];
  absl::StatusOr<double> t = Field<double>(record, "t");
  if (*op == "report") {
    if (trial.state != TrialState::kRunning)
      return bad(absl::StrCat("report for trial ", *number, " which is not running"));
    absl::StatusOr<int64_t> step = Field<int64_t>(record, "step");
    if (!step.ok() || !record.contains("value")) return bad("report needs step and value");
    const nlohmann::json& v = record["value"];
    if (!v.is_null() && !v.is_number()) return bad("report value must be a number or null");
    trial.intermediate[*step] = v.is_null() ? std::nan("") : v.get<double>();
    return absl::OkStatus();
  }
  if (!t.ok()) return field_error(t.status());
  if (*op == "finish") {
    if (trial.state != TrialState::kRunning)
      return bad(absl::StrCat("finish for trial ", *number, " which is not running"));
    absl::StatusOr<std::string> state = Field<std::string>(record, "state");
    if (!state.ok()) return field_error(state.status());
    if (*state == "complete") {
      absl::StatusOr<double> value = Field<double>(record, "value");
      if (!value.ok()) return field_error(value.status());
      trial.state = TrialState::kComplete;
      trial.value = *value;
    } else if (*state == "pruned") {
      trial.state = TrialState::kPruned;
      if (record.contains("value")) {
        absl::StatusOr<double> value = Field<double>(record, "value");
        if (!value.ok()) return field_error(value.status());
        trial.value = *value;
      }
    } else if (*state == "fail") {
      trial.state = TrialState::kFail;
      trial.message = StringOr(record, "message", "");
    } else {
      return bad(absl::StrCat("unknown final state \"", *state, "\""));
    }
    trial.end_time = *t;
    return absl::OkStatus();
  }
  if (*op == "stale") {
    if (trial.state != TrialState::kRunning)
      return bad(absl::StrCat("stale for trial ", *number, " which is not running"));
    trial.state = TrialState::kStale;
    trial.message = StringOr(record, "reason", "");
    trial.end_time = *t;
    return absl::OkStatus();
  }
  if (*op == "retry") {
    if (trial.state != TrialState::kStale)
      return bad(absl::StrCat("retry for trial ", *number, " which is not stale"));
    absl::StatusOr<std::string> worker = Field<std::string>(record, "worker");
    if (!worker.ok()) return field_error(worker.status());
    trial.state = TrialState::kRunning;
    trial.attempts += 1;
    trial.intermediate.clear();
    trial.value.reset();
    trial.message.clear();
    trial.worker = *worker;
    trial.start_time = *t;
    trial.end_time = 0.0;
    return absl::OkStatus();
  }
  return bad(absl::StrCat("unknown op \"", *op, "\""));
}

std::optional<std::string> Study::DeadWorkerReason(const FrozenTrial& t, double now) const {
  std::string host, token;
  int64_t pid = 0;
  if (ParseWorker(t.worker, &host, &pid, &token) && host == host_) {
    if (pid == ::getpid()) {
      std::lock_guard<std::mutex> lock(RegistryMutex());
      if (LiveTokens().count(token) != 0) return std::nullopt;
      return absl::StrCat("its worker ", t.worker, " (a study object of this process) was closed");
    }
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      return absl::StrCat("its worker ", t.worker, " is gone (no process ", pid, ")");
    }
  }
  double last = t.start_time;
  if (auto it = heartbeats_.find(t.worker); it != heartbeats_.end())
    last = std::max(last, it->second);
  if (now - last > options_.stale_timeout_s) {
    return absl::StrFormat("its worker %s sent no heartbeat for %.1f s (timeout %.1f s)", t.worker,
                           now - last, options_.stale_timeout_s);
  }
  return std::nullopt;
}

absl::Status Study::MarkStaleTrials() {
  if (!journal_) return absl::OkStatus();
  const double now = NowSeconds();
  for (FrozenTrial& t : trials_) {
    if (t.state != TrialState::kRunning) continue;
    std::optional<std::string> reason = DeadWorkerReason(t, now);
    if (!reason.has_value()) continue;
    Warn(absl::StrCat("trial ", t.number, " is stale: ", *reason, "; it will be rerun"));
    if (absl::Status s =
            Write({{"op", "stale"}, {"number", t.number}, {"reason", *reason}, {"t", now}});
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AskResult> Study::AskLocked(int64_t n_trials) {
  if (absl::Status s = MarkStaleTrials(); !s.ok()) return s;
  AskResult result;
  if (n_trials >= 0) {
    int64_t finished = 0, running = 0;
    for (const FrozenTrial& t : trials_) {
      finished += t.finished() ? 1 : 0;
      running += t.state == TrialState::kRunning ? 1 : 0;
    }
    if (finished >= n_trials) {
      result.done = true;
      return result;
    }
    if (finished + running >= n_trials) return result;
  }
  const double now = NowSeconds();
  for (const FrozenTrial& t : trials_) {
    if (t.state != TrialState::kStale) continue;
    const int64_t number = t.number;
    if (absl::Status s =
            Write({{"op", "retry"}, {"number", number}, {"worker", worker_id_}, {"t", now}});
        !s.ok()) {
      return s;
    }
    const FrozenTrial& rerun = trials_[number];
    result.trial.emplace(number, rerun.attempts, rerun.params, space_);
    return result;
  }

  const int64_t number = static_cast<int64_t>(trials_.size());
  Rng rng(Rng::TrialSeed(options_.seed, number));
  std::optional<size_t> queued;
  for (size_t q = 0; q < queue_.size() && !queued; ++q) {
    if (!queue_[q].used) queued = q;
  }
  std::vector<double> values;
  if (queued.has_value()) {
    PMPD_HPO_ASSIGN(given, ParseParams(*space_, queue_[*queued].params, false));
    bool all = true;
    for (const auto& v : given) all = all && v.has_value();
    if (!all) values = sampler_->Sample(*space_, trials_, options_.direction, rng);
    values.resize(space_->size());
    for (size_t i = 0; i < given.size(); ++i) {
      if (given[i].has_value()) values[i] = *given[i];
    }
  } else {
    values = sampler_->Sample(*space_, trials_, options_.direction, rng);
  }
  nlohmann::json record = {{"op", "trial"},
                           {"number", number},
                           {"params", ParamsToJson(*space_, values)},
                           {"worker", worker_id_},
                           {"t", now}};
  if (queued.has_value()) record["enqueued"] = *queued;
  if (absl::Status s = Write(std::move(record)); !s.ok()) return s;
  result.trial.emplace(number, 1, trials_[number].params, space_);
  return result;
}

absl::StatusOr<Trial> Study::Ask() {
  absl::StatusOr<AskResult> result;
  absl::Status s = Transact([&] {
    result = AskLocked(-1);
    return result.status();
  });
  if (!s.ok()) return s;
  PMPD_HPO_CHECK(result->trial.has_value());
  return *std::move(result->trial);
}

absl::StatusOr<AskResult> Study::AskUnlessDone(int64_t n_trials) {
  PMPD_HPO_CHECK(n_trials >= 0);
  absl::StatusOr<AskResult> result;
  absl::Status s = Transact([&] {
    result = AskLocked(n_trials);
    return result.status();
  });
  if (!s.ok()) return s;
  return result;
}

absl::Status Study::Enqueue(const nlohmann::json& params) {
  PMPD_HPO_ASSIGN(values, ParseParams(*space_, params, /*require_all=*/false));
  nlohmann::json canonical = nlohmann::json::object();
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].has_value())
      canonical[space_->param(i).name] = space_->ValueToJson(i, *values[i]);
  }
  if (canonical.empty()) return absl::InvalidArgumentError("enqueued point has no parameters");
  return Transact([&]() -> absl::Status {
    for (const Queued& q : queue_) {
      if (q.params == canonical) return absl::OkStatus();
    }
    return Write({{"op", "enqueue"}, {"params", canonical}});
  });
}

absl::StatusOr<FrozenTrial*> Study::MyRunningTrial(int64_t number, absl::string_view action) {
  if (number < 0 || number >= static_cast<int64_t>(trials_.size())) {
    return absl::NotFoundError(absl::StrCat(action, ": no trial ", number));
  }
  FrozenTrial& t = trials_[number];
  if (t.state != TrialState::kRunning || t.worker != worker_id_) {
    return absl::FailedPreconditionError(absl::StrCat(
        action, ": trial ", number, " is not running in this worker (state ",
        TrialStateName(t.state), ", worker ", t.worker, "); it was probably declared stale"));
  }
  return &t;
}

absl::Status Study::Finish(int64_t number, TrialState state, std::optional<double> value,
                           absl::string_view message) {
  return Transact([&]() -> absl::Status {
    PMPD_HPO_ASSIGN(trial, MyRunningTrial(number, "tell"));
    nlohmann::json record = {{"op", "finish"},
                             {"number", number},
                             {"state", TrialStateName(state)},
                             {"t", NowSeconds()}};
    if (state == TrialState::kPruned && !trial->intermediate.empty() &&
        std::isfinite(trial->intermediate.rbegin()->second)) {
      value = trial->intermediate.rbegin()->second;
    }
    if (value.has_value()) record["value"] = *value;
    if (!message.empty()) record["message"] = std::string(message);
    return Write(std::move(record));
  });
}

absl::Status Study::Tell(int64_t number, double value) {
  if (!std::isfinite(value)) {
    const std::string why = absl::StrCat("objective returned ", value);
    Warn(absl::StrCat("trial ", number, " fails: ", why));
    return Finish(number, TrialState::kFail, std::nullopt, why);
  }
  return Finish(number, TrialState::kComplete, value, "");
}

absl::Status Study::TellPruned(int64_t number) {
  return Finish(number, TrialState::kPruned, std::nullopt, "");
}

absl::Status Study::TellFailed(int64_t number, absl::string_view message) {
  return Finish(number, TrialState::kFail, std::nullopt, message.empty() ? "failed" : message);
}

absl::Status Study::Report(int64_t number, int64_t step, double value) {
  if (step < 0)
    return absl::InvalidArgumentError(absl::StrCat("report: step must be >= 0, got ", step));
  return Transact([&]() -> absl::Status {
    PMPD_HPO_ASSIGN(trial, MyRunningTrial(number, "report"));
    if (trial->intermediate.count(step) != 0) {
      Warn(absl::StrCat("trial ", number, ": step ", step,
                        " was already reported; kept the first value"));
      return absl::OkStatus();
    }
    nlohmann::json v = std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
    return Write(
        {{"op", "report"}, {"number", number}, {"step", step}, {"value", v}, {"t", NowSeconds()}});
  });
}

absl::StatusOr<bool> Study::ShouldPrune(int64_t number) {
  bool prune = false;
  absl::Status s = Transact([&]() -> absl::Status {
    if (number < 0 || number >= static_cast<int64_t>(trials_.size())) {
      return absl::NotFoundError(absl::StrCat("should_prune: no trial ", number));
    }
    const FrozenTrial& t = trials_[number];
    if (t.state != TrialState::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("should_prune: trial ", number, " is ", TrialStateName(t.state)));
    }
    prune = pruner_->ShouldPrune(trials_, t, options_.direction);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return prune;
}

absl::StatusOr<std::vector<FrozenTrial>> Study::Trials() {
  std::vector<FrozenTrial> copy;
  absl::Status s = Transact([&] {
    copy = trials_;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  return copy;
}

absl::StatusOr<std::optional<FrozenTrial>> Study::BestTrial() {
  PMPD_HPO_ASSIGN(trials, Trials());
  std::optional<FrozenTrial> best;
  for (FrozenTrial& t : trials) {
    if (t.state != TrialState::kComplete) continue;
    if (!best.has_value() || Better(options_.direction, *t.value, *best->value))
      best = std::move(t);
  }
  return best;
}

void Study::HeartbeatLoop() {
  const auto interval = std::chrono::duration<double>(options_.heartbeat_interval_s);
  std::unique_lock<std::mutex> lock(heartbeat_mu_);
  while (!heartbeat_cv_.wait_for(lock, interval, [this] { return stopping_; })) {
    lock.unlock();
    absl::Status s = Transact([&]() -> absl::Status {
      for (const FrozenTrial& t : trials_) {
        if (t.state == TrialState::kRunning && t.worker == worker_id_) {
          return Write({{"op", "heartbeat"}, {"worker", worker_id_}, {"t", NowSeconds()}});
        }
      }
      return absl::OkStatus();
    });
    if (!s.ok()) Warn(absl::StrCat("heartbeat not written: ", s.message()));
    lock.lock();
  }
}

}  // namespace pmpd::hpo
