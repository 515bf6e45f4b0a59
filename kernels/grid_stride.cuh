// The launch shape of the grid-stride elementwise kernels: 256 threads per block, at most 65535
// blocks (each thread then loops over the rest).
#pragma once

#include <algorithm>
#include <cstdint>

namespace pmpd::kernels {

inline constexpr int kGridStrideThreads = 256;

inline unsigned GridStrideBlocks(int64_t n) {
  return static_cast<unsigned>(
      std::min<int64_t>((n + kGridStrideThreads - 1) / kGridStrideThreads, 65535));
}

}  // namespace pmpd::kernels
