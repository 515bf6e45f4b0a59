#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace pmpd::cli {

std::string FormatDuration(double seconds) {
  if (!(seconds >= 0) || !std::isfinite(seconds)) return "?";
  const int64_t s = static_cast<int64_t>(std::llround(seconds));
  if (s < 60) return absl::StrCat(s, " s");
  if (s < 3600) return absl::StrFormat("%d min %02d s", s / 60, s % 60);
  return absl::StrFormat("%d h %02d min", s / 3600, (s % 3600) / 60);
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : Progress(std::move(label), total, std::move(unit), [] {
        Options o;
        o.terminal = isatty(fileno(stderr));
        return o;
      }()) {}

Progress::Progress(std::string label, int64_t total, std::string unit, Options options)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), o_(std::move(options)) {
  if (!o_.now) {
    o_.now = [] {
      return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
  }
  start_ = o_.now();
}

Progress::~Progress() { Finish(); }

void Progress::Resumed(int64_t done) {
  base_done_ = done;
  base_time_ = o_.now();
}

std::string Progress::Line(int64_t done, absl::string_view note, double now) const {
  const std::string unit = unit_.empty() ? "" : absl::StrCat(" ", unit_);
  std::string line = absl::StrCat(label_, ": ", done);
  if (total_ > 0) {
    absl::StrAppend(&line, "/", total_, unit,
                    absl::StrFormat(" (%d%%)", static_cast<int>(100 * done / total_)));
  } else {
    absl::StrAppend(&line, unit);
  }
  const double elapsed = now - start_;
  const int64_t counted = done - base_done_;
  if (base_time_ >= 0 && counted > 0 && now > base_time_) {
    const double rate = counted / (now - base_time_);
    absl::StrAppend(&line,
                    rate >= 10 ? absl::StrFormat("  %.0f", rate) : absl::StrFormat("  %.2f", rate),
                    unit_.empty() ? "" : absl::StrCat(" ", unit_), "/s");
    if (total_ > 0 && done < total_) {
      absl::StrAppend(&line, "  ETA ", FormatDuration((total_ - done) / rate));
    } else if (done >= total_) {
      absl::StrAppend(&line, "  in ", FormatDuration(elapsed));
    }
  }
  if (!note.empty()) absl::StrAppend(&line, "  ", note);
  return line;
}

void Progress::Update(int64_t done, absl::string_view note) {
  if (ended_) return;
  const double now = o_.now();
  // The rate counts from the first update (or Resumed): a Progress made when the first item is
  // already done, or after resumed items, would otherwise report an absurd rate.
  if (base_time_ < 0) {
    base_done_ = done;
    base_time_ = now;
  }
  const bool last = total_ > 0 && done >= total_;
  const int64_t bucket =
      total_ > 0 && o_.percent_step > 0 ? 100 * done / total_ / o_.percent_step : 0;
  if (o_.terminal) {
    if (!last && last_print_ >= 0 && now - last_print_ < 0.1) return;
    const std::string line = Line(done, note, now);
    // Spaces over what is left of a longer previous line.
    std::fprintf(o_.out, "\r%s%s", line.c_str(),
                 std::string(drawn_ > line.size() ? drawn_ - line.size() : 0, ' ').c_str());
    drawn_ = line.size();
    if (last) {
      std::fprintf(o_.out, "\n");
      drawn_ = 0;
      ended_ = true;
    }
  } else {
    const bool due =
        last || last_print_ < 0 || bucket > last_bucket_ || now - last_print_ >= o_.min_interval_s;
    if (!due) return;
    std::fprintf(o_.out, "%s\n", Line(done, note, now).c_str());
    ended_ = last;
  }
  std::fflush(o_.out);
  last_print_ = now;
  last_bucket_ = bucket;
}

void Progress::Finish() {
  if (drawn_ > 0) {
    std::fprintf(o_.out, "\n");
    std::fflush(o_.out);
    drawn_ = 0;
  }
  ended_ = true;
}

}  // namespace pmpd::cli
