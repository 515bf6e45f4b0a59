// One macro that reports the failing CUDA call with file:line and aborts.
#pragma once

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

#define PMPD_CUDA_CHECK(expr)                                                   \
  do {                                                                          \
    cudaError_t pmpd_err_ = (expr);                                             \
    if (pmpd_err_ != cudaSuccess) {                                             \
      std::fprintf(stderr, "%s:%d: CUDA error %s: %s\n", __FILE__, __LINE__,    \
                   cudaGetErrorName(pmpd_err_), cudaGetErrorString(pmpd_err_)); \
      std::abort();                                                             \
    }                                                                           \
  } while (0)
