// Invariant checks for pmpd_hpo. hpo depends on no other pmpd layer, so it cannot use
// kernels/check.h; this is the same contract: a failed check is a programming error inside the
// library, prints file:line and aborts. Errors caused by user input are returned as absl::Status.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pmpd::hpo::internal {
inline const char* CheckMessage() { return ""; }
inline const char* CheckMessage(const char* message) { return message; }
}  // namespace pmpd::hpo::internal

// PMPD_HPO_CHECK(cond) or PMPD_HPO_CHECK(cond, "what was expected").
#define PMPD_HPO_CHECK(cond, ...)                                                     \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s %s\n", __FILE__, __LINE__, #cond, \
                   ::pmpd::hpo::internal::CheckMessage(__VA_ARGS__));                 \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)
