// Invariant checks shared by every layer (kernels/ is the bottom layer, so it owns them).
// PMPD_CHECK is for programming errors inside a layer: it prints file:line and aborts.
// Errors caused by user input are returned as absl::Status at layer boundaries instead.
#pragma once

#include <cstdio>
#include <cstdlib>

#define PMPD_CHECK(cond, ...)                                                         \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s ", __FILE__, __LINE__, #cond);    \
      std::fprintf(stderr, "" __VA_ARGS__);                                           \
      std::fprintf(stderr, "\n");                                                     \
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
