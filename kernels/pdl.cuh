// Programmatic dependent launch (sm_90+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the preceding kernel on its
// stream is still running; it must call GridDependencyWait() before it reads anything that kernel
// writes (or writes anything it reads). TriggerDependents() in the preceding kernel lets the
// dependent start as soon as every block of this one has been scheduled, instead of at its exit.
// Both are no-ops on older architectures and for kernels launched without the attribute.
#pragma once

#include <cuda_runtime.h>

#include "kernels/cuda_check.cuh"

namespace pmpd::kernels {

// Launches kernel<<<grid, block, smem_bytes, stream>>>(args...), as a programmatic dependent launch
// when `overlap` (the kernel must then call GridDependencyWait() before touching the previous
// kernel's data).
template <typename... KernelArgs, typename... Args>
void LaunchOverlappedSmem(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, size_t smem_bytes,
                          cudaStream_t stream, bool overlap, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem_bytes;
  config.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attr;
  config.numAttrs = overlap ? 1 : 0;
  PMPD_CUDA_CHECK(cudaLaunchKernelEx(&config, kernel, static_cast<KernelArgs>(args)...));
}

// The same without dynamic shared memory.
template <typename... KernelArgs, typename... Args>
void LaunchOverlapped(void (*kernel)(KernelArgs...), dim3 grid, dim3 block, cudaStream_t stream,
                      bool overlap, Args... args) {
  LaunchOverlappedSmem(kernel, grid, block, 0, stream, overlap, args...);
}

__device__ __forceinline__ void GridDependencyWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void TriggerDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" :::);
#endif
}

}  // namespace pmpd::kernels
