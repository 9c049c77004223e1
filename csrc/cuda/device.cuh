// What the CUDA kernels need from the device, written once for the two ways they are built:
// by nvcc for a real GPU, and by the host compiler for the emulated device of the tests
// (csrc/emulated/cuda_emulation.h, included first, defines SNNFAST_EMULATED). The kernel
// bodies and their launch code (lif_kernel.cuh, recurrent_lif_kernel.cuh) are the same in
// both builds; only what is below differs.
#pragma once

#include <c10/util/Exception.h>

#include <cstdint>

#if defined(SNNFAST_EMULATED)
#include "emulated/cuda_emulation.h"
#else
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <array>
#include <atomic>
#include <mutex>
#include <set>
#include <utility>
#endif

namespace snnfast {

// Whether the threads of a block meet: at __syncthreads() (Block), or the lanes of each warp
// at warp votes (__ballot_sync: Warp). The emulated device runs the threads of a block one
// after the other unless they do; a GPU ignores it.
enum class Sync { None, Block, Warp };

#if defined(SNNFAST_EMULATED)

// SNNFAST_LAUNCH(kernel, blocks, threads, shared_bytes, sync, args...): kernel<<<...>>>(args)
// on the current stream, with the launch checked. `kernel` is a variable (a template
// argument list would split the macro's arguments).
#define SNNFAST_LAUNCH(kernel, blocks, threads, shared_bytes, sync, ...) \
  ::snnfast::emulated::launch(kernel, blocks, threads, shared_bytes, sync != ::snnfast::Sync::None, __VA_ARGS__)

inline int multiprocessor_count() { return emulated::device().multiprocessors; }
inline int max_shared_memory_per_block() { return emulated::device().shared_memory_per_block; }
template <typename Kernel>
void allow_shared_memory(Kernel, size_t) {}  // the emulated launch checks the limit itself

template <typename T>
T* dynamic_shared_memory() {
  return reinterpret_cast<T*>(emulated::block_shared_memory);
}

// Hides v from the optimiser (see lif_kernel.cuh).
inline int64_t opaque(int64_t v) {
  asm("" : "+r"(v));
  return v;
}

#else  // nvcc

#define SNNFAST_LAUNCH(kernel, blocks, threads, shared_bytes, sync, ...)                \
  do {                                                                                   \
    kernel<<<blocks, threads, shared_bytes, c10::cuda::getCurrentCUDAStream()>>>(__VA_ARGS__); \
    C10_CUDA_KERNEL_LAUNCH_CHECK();                                                      \
  } while (0)

// A device attribute of the current device, queried once per device: the launch shape is
// chosen on every call, and calls of few steps are short.
template <cudaDeviceAttr kAttribute>
int device_attribute() {
  static std::array<std::atomic<int>, C10_COMPILE_TIME_MAX_GPUS> values{};
  const c10::DeviceIndex device = c10::cuda::current_device();
  int value = values[device].load(std::memory_order_relaxed);
  if (value == 0) {
    C10_CUDA_CHECK(cudaDeviceGetAttribute(&value, kAttribute, device));
    values[device].store(value, std::memory_order_relaxed);
  }
  return value;
}

inline int multiprocessor_count() { return device_attribute<cudaDevAttrMultiProcessorCount>(); }
// The most dynamic shared memory a block may have once it opts in (more than the 48 KB default).
inline int max_shared_memory_per_block() {
  return device_attribute<cudaDevAttrMaxSharedMemoryPerBlockOptin>();
}

// Lets `kernel` use up to the device's opt-in limit of dynamic shared memory: once per kernel
// and device, since cudaFuncSetAttribute is a driver call that small calls would notice.
template <typename Kernel>
void allow_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return;
  static std::mutex mutex;
  static std::set<std::pair<const void*, int>> done;
  const std::pair<const void*, int> key{reinterpret_cast<const void*>(kernel), c10::cuda::current_device()};
  const std::lock_guard<std::mutex> lock(mutex);
  if (done.count(key)) return;
  C10_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      max_shared_memory_per_block()));
  done.insert(key);
}

template <typename T>
__device__ __forceinline__ T* dynamic_shared_memory() {
  extern __shared__ __align__(16) unsigned char smem[];
  return reinterpret_cast<T*>(smem);
}

// Hides v from the optimiser (see lif_kernel.cuh).
__device__ __forceinline__ int64_t opaque(int64_t v) {
  asm("" : "+l"(v));
  return v;
}

#endif

// The sample b and neuron n of element m of a [B, N] row: in 32 bits when they fit, because
// a 64-bit division is a long routine that kernels of little work per thread would notice.
struct Neuron {
  int64_t b, n;
};
__device__ __forceinline__ Neuron neuron_of(int64_t m, int64_t M, int64_t N) {
  if (M <= INT32_MAX) {
    const int32_t m32 = static_cast<int32_t>(m), N32 = static_cast<int32_t>(N);
    return {m32 / N32, m32 % N32};
  }
  return {m / N, m % N};
}

}  // namespace snnfast
