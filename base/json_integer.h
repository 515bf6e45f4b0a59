// Integers read from untrusted JSON without narrowing and without undefined behaviour.
// nlohmann's get<int>() on 1e300 is a float-to-int conversion out of range (undefined behaviour,
// found by fuzz/classifier_fuzzer's UBSan build), and on 4294967301 it silently wraps to 5.
#pragma once

#include <cstdint>
#include <optional>

#include "nlohmann/json.hpp"

namespace pmpd::base {

// `v` as an integer in [lo, hi]; nullopt for anything else: a float (even 3.0), a string, an
// integer outside the range. Cost: none.
inline std::optional<int64_t> JsonInteger(const nlohmann::json& v, int64_t lo, int64_t hi) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > static_cast<uint64_t>(hi) || static_cast<int64_t>(u) < lo)
      return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < lo || s > hi) return std::nullopt;
    return s;
  }
  return std::nullopt;
}

}  // namespace pmpd::base
