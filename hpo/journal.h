// The append-only journal file of a study: one record per line, each with its own checksum,
//
//   <crc32 of the JSON text, 8 lowercase hex digits> <JSON object>\n
//
// e.g. `7a5c6f89 {"number":0,"op":"finish","state":"complete","t":1718000000.5,"value":0.25}`.
// Every read and append happens under an exclusive flock() on the file (threads of one process
// serialise on the caller's mutex first: flock does not exclude threads sharing a descriptor), so
// processes and hosts on a shared file system see one total order of records. Each line goes out
// in one write() and is fsync'd before the lock is released.
//
// Recovery: a last line without its newline, or whose checksum or JSON is bad, is what a writer
// killed mid-write leaves; it is cut off with a warning. A bad line followed by good ones is
// corruption: an error naming the file and the line number.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace pmpd::hpo {

struct JournalRecord {
  nlohmann::json json;
  int64_t line = 0;  // 1-based line number in the file
};

// "<crc> <json>\n" for a record.
std::string EncodeJournalLine(const nlohmann::json& record);

class Journal {
 public:
  using WarnFn = std::function<void(const std::string&)>;

  // Opens the journal at `path`, creating an empty file if there is none. Fails with a message
  // naming the path. `sync`: fsync after each append.
  static absl::StatusOr<std::unique_ptr<Journal>> Open(const std::string& path, bool sync,
                                                       WarnFn warn);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Takes / releases the exclusive file lock; Lock blocks until the lock is free.
  absl::Status Lock();
  void Unlock();

  // Under the lock: the records appended since the previous call (by anyone), in file order.
  // Truncates a torn last line (with a warning); fails on a corrupted line in the middle.
  absl::StatusOr<std::vector<JournalRecord>> ReadNew();
  // Under the lock, after ReadNew: appends `record` as one line (and fsyncs when sync is on).
  // Returns the line number it got.
  absl::StatusOr<int64_t> Append(const nlohmann::json& record);

  const std::string& path() const { return path_; }

 private:
  Journal(std::string path, int fd, bool sync, WarnFn warn);

  std::string path_;
  int fd_;
  bool sync_;
  WarnFn warn_;
  bool locked_ = false;
  int64_t offset_ = 0;      // bytes consumed so far
  int64_t lines_read_ = 0;  // complete lines consumed so far
};

}  // namespace pmpd::hpo
