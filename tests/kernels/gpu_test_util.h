// Shared by the GPU tests (label `gpu`): skip with a message where there is no CUDA device.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

namespace pmpd::testing {

inline bool HaveGpu() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

// A device copy of a host vector for kernel tests; Get() synchronizes and copies back.
template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(const std::vector<T>& h) : n(h.size()) {
    EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(1, n) * sizeof(T)), cudaSuccess);
    cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  std::vector<T> Get() const {
    std::vector<T> h(n);
    EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
  ~Dev() { cudaFree(p); }
};

}  // namespace pmpd::testing

#define PMPD_REQUIRE_GPU()                                                                      \
  do {                                                                                          \
    if (!::pmpd::testing::HaveGpu()) {                                                          \
      GTEST_SKIP() << "no CUDA device on this machine; run the `gpu` label on the GPU machine"; \
    }                                                                                           \
  } while (0)
