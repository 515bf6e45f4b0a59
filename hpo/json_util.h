// Exception-free access to nlohmann::json for hpo: no exception may leave the library, and
// json::dump() throws on invalid UTF-8 (a failure message or a choice built in code may hold any
// bytes), json::value() on a field of the wrong type (a journal edited by hand).
#pragma once

#include <cstdint>
#include <string>

#include "nlohmann/json.hpp"

namespace pmpd::hpo {

// Compact JSON text; invalid UTF-8 becomes U+FFFD. Never throws.
inline std::string DumpJson(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The string field `key` of object `j`, or `fallback` when absent or not a string.
inline std::string StringOr(const nlohmann::json& j, const char* key, const std::string& fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

// The integer field `key` of object `j`, or `fallback` when absent or not an integer.
inline int64_t IntOr(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace pmpd::hpo
