// Progress of a long loop on stderr, with rate and ETA, the same in every tool.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

#include "absl/strings/string_view.h"

namespace pmpd::cli {

// "42 s", "3 min 05 s", "2 h 07 min".
std::string FormatDuration(double seconds);

// Prints "<label>: <done>/<total> <unit> (<percent>%)  <rate> <unit>/s  ETA <duration>  <note>".
// On a terminal one line is redrawn in place (\r, at most 10 times a second); elsewhere (a log
// file, a pipe) a full line is printed only when the done count crosses another 10% of the total,
// when 30 s have passed since the last line, and at the end, so logs do not fill with counters.
// Not thread-safe; allocates per printed line only.
class Progress {
 public:
  struct Options {
    bool terminal = false;  // redraw in place; default: whether `out` is a terminal
    std::FILE* out = stderr;
    double min_interval_s = 30;   // without a terminal: a line at least this often
    int percent_step = 10;        // without a terminal: a line each time this many % are done
    std::function<double()> now;  // seconds on a monotonic clock (tests inject one)
  };
  Progress(std::string label, int64_t total, std::string unit = "");
  Progress(std::string label, int64_t total, std::string unit, Options options);
  ~Progress();  // Finish()
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // `done` items were finished before this run (resumed work): they count as done but not toward
  // the rate. Without it the rate counts from the first Update. Call before the first Update.
  void Resumed(int64_t done);
  // `done` of `total` are finished; prints when due (always at done == total).
  void Update(int64_t done, absl::string_view note = "");
  // Ends the redrawn line with a newline, if one is open.
  void Finish();

 private:
  std::string Line(int64_t done, absl::string_view note, double now) const;
  std::string label_, unit_;
  int64_t total_ = 0, base_done_ = 0;  // the rate counts from (base_done_, base_time_)
  Options o_;
  double start_ = 0, base_time_ = -1, last_print_ = -1;
  int64_t last_bucket_ = -1;
  size_t drawn_ = 0;  // length of the line on screen (terminal), 0 when none is open
  bool ended_ = false;
};

}  // namespace pmpd::cli
