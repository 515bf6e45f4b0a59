// Programmatic dependent launch (sm_90+): a kernel launched with
// cudaLaunchAttributeProgrammaticStreamSerialization may start while the preceding kernel on its
// stream is still running; it must call GridDependencyWait() before it reads anything that kernel
// writes (or writes anything it reads). TriggerDependents() in the preceding kernel lets the
// dependent start as soon as every block of this one has been scheduled, instead of at its exit.
// Both are no-ops on older architectures and for kernels launched without the attribute.
#pragma once

namespace pmpd::kernels {

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
