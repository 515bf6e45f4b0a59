// Invariant checks shared by every layer (kernels/ is the bottom layer, so it owns them).
// PMPD_CHECK is for programming errors inside a layer: it prints file:line and aborts.
// Errors caused by user input are returned as absl::Status at layer boundaries instead.
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pmpd::kernels {
// The optional message of PMPD_CHECK(cond, "message").
inline const char* CheckMessage() { return ""; }
inline const char* CheckMessage(const char* message) { return message; }
}  // namespace pmpd::kernels

// PMPD_CHECK(cond) or PMPD_CHECK(cond, "what was expected").
#define PMPD_CHECK(cond, ...)                                                         \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s %s\n", __FILE__, __LINE__, #cond, \
                   ::pmpd::kernels::CheckMessage(__VA_ARGS__));                       \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

#ifdef NDEBUG
#define PMPD_DCHECK(cond, ...) \
  do {                         \
  } while (0)
#else
#define PMPD_DCHECK(cond, ...) PMPD_CHECK(cond, __VA_ARGS__)
#endif
