// Shared by the GPU tests (label `gpu`): skip with a message where there is no CUDA device.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

namespace pmpd::testing {

inline bool HaveGpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

}  // namespace pmpd::testing

#define PMPD_REQUIRE_GPU()                                                                             \
  do {                                                                                                 \
    if (!::pmpd::testing::HaveGpu()) {                                                                 \
      GTEST_SKIP() << "no CUDA device on this machine; run the `gpu` label on the GPU machine";        \
    }                                                                                                  \
  } while (0)
