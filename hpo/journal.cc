#include "hpo/journal.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "hpo/crc32.h"
#include "hpo/hpo_check.h"
#include "hpo/json_util.h"

namespace pmpd::hpo {
namespace {

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

// The record of one line (without its newline), or why it is not one.
absl::StatusOr<nlohmann::json> DecodeLine(absl::string_view line) {
  if (line.size() < 10 || line[8] != ' ') {
    return absl::DataLossError("expected \"<8 hex digits> <json>\"");
  }
  uint32_t crc = 0;
  for (int i = 0; i < 8; ++i) {
    const char c = line[i];
    uint32_t d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else {
      return absl::DataLossError("expected \"<8 hex digits> <json>\"");
    }
    crc = crc << 4 | d;
  }
  const absl::string_view text = line.substr(9);
  if (Crc32(text) != crc) return absl::DataLossError("checksum mismatch");
  nlohmann::json json =
      nlohmann::json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::DataLossError("checksum matches but the record is not a JSON object");
  }
  return json;
}

}  // namespace

std::string EncodeJournalLine(const nlohmann::json& record) {
  const std::string text = DumpJson(record);
  return absl::StrFormat("%08x %s\n", Crc32(text), text);
}

absl::StatusOr<std::unique_ptr<Journal>> Journal::Open(const std::string& path, bool sync,
                                                       WarnFn warn) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("cannot open the study journal", path);
  return std::unique_ptr<Journal>(new Journal(path, fd, sync, std::move(warn)));
}

Journal::Journal(std::string path, int fd, bool sync, WarnFn warn)
    : path_(std::move(path)), fd_(fd), sync_(sync), warn_(std::move(warn)) {}

Journal::~Journal() {
  if (locked_) Unlock();
  ::close(fd_);
}

absl::Status Journal::Lock() {
  PMPD_HPO_CHECK(!locked_, "journal lock is not reentrant");
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno != EINTR) return Errno("cannot lock the study journal", path_);
  }
  locked_ = true;
  return absl::OkStatus();
}

void Journal::Unlock() {
  PMPD_HPO_CHECK(locked_);
  ::flock(fd_, LOCK_UN);
  locked_ = false;
}

absl::StatusOr<std::vector<JournalRecord>> Journal::ReadNew() {
  PMPD_HPO_CHECK(locked_, "ReadNew needs the lock");
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Errno("cannot stat the study journal", path_);
  const int64_t size = st.st_size;
  if (size < offset_) {
    return absl::DataLossError(absl::StrCat(path_, ": the journal shrank from ", offset_, " to ",
                                            size, " bytes while open (edited by hand?)"));
  }
  std::string data(static_cast<size_t>(size - offset_), '\0');
  for (size_t done = 0; done < data.size();) {
    const ssize_t n = ::pread(fd_, data.data() + done, data.size() - done, offset_ + done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot read the study journal", path_);
    done += static_cast<size_t>(n);
  }
  std::vector<JournalRecord> records;
  size_t pos = 0;
  while (pos < data.size()) {
    const int64_t line_no = lines_read_ + 1;
    const size_t nl = data.find('\n', pos);
    absl::Status bad;
    absl::string_view line;
    if (nl == std::string::npos) {
      bad = absl::DataLossError("no newline at the end");
    } else {
      line = absl::string_view(data).substr(pos, nl - pos);
      absl::StatusOr<nlohmann::json> json = DecodeLine(line);
      if (json.ok()) {
        records.push_back({*std::move(json), line_no});
        pos = nl + 1;
        offset_ += static_cast<int64_t>(line.size() + 1);
        ++lines_read_;
        continue;
      }
      bad = json.status();
    }
    if (nl != std::string::npos && nl + 1 < data.size()) {
      return absl::DataLossError(absl::StrCat(path_, ":", line_no, ": corrupted record (",
                                              bad.message(),
                                              ") followed by more records; "
                                              "the journal cannot be trusted past this line"));
    }
    // The torn tail of a writer that died mid-write: cut it off so the next append starts clean.
    if (::ftruncate(fd_, offset_) != 0)
      return Errno("cannot truncate the torn journal tail", path_);
    if (sync_) ::fsync(fd_);
    if (warn_) {
      warn_(absl::StrCat(path_, ":", line_no, ": torn last record (", bad.message(), ", ",
                         data.size() - pos, " bytes) left by a worker killed mid-write; cut off"));
    }
    break;
  }
  return records;
}

absl::StatusOr<int64_t> Journal::Append(const nlohmann::json& record) {
  PMPD_HPO_CHECK(locked_, "Append needs the lock");
  const std::string line = EncodeJournalLine(record);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot append to the study journal", path_);
    done += static_cast<size_t>(n);
  }
  if (sync_ && ::fsync(fd_) != 0) return Errno("cannot fsync the study journal", path_);
  offset_ += static_cast<int64_t>(line.size());
  return ++lines_read_;
}

}  // namespace pmpd::hpo
