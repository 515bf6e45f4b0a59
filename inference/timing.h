// Wall-clock timing helper shared by the generation loops.
#pragma once

#include <chrono>

namespace pmpd::inference {

using Clock = std::chrono::steady_clock;

// Milliseconds elapsed since t0.
inline double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

}  // namespace pmpd::inference
