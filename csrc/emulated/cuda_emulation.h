// An emulated CUDA device: enough of CUDA's language for the host compiler to build the
// kernels of csrc/cuda/*.cuh, so that the tests run them, every launch shape and both
// recurrent paths, on machines without a GPU (tests/emulated_cuda.py builds them).
//
// A launch runs its blocks one after the other. The threads of a block run one after the
// other on the calling thread, unless the kernel meets at __syncthreads() (Sync::Block):
// then each CUDA thread of the block is a std::thread and __syncthreads() a std::barrier,
// so that a missing barrier is a data race that TSan reports (.ci/sanitize.sh). Dynamic
// shared memory is a heap buffer of exactly the launch's size, filled with 0xFF bytes (a
// NaN in float and double), so that ASan reports a read past it and a test sees a read of
// what no thread wrote. The kernels use no warp intrinsics and no atomics.
#pragma once

#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include <c10/util/Exception.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // shared by the threads of a block: blocks run one at a time
#define __align__(n) alignas(n)
#define __syncthreads() ::snnfast::emulated::syncthreads()

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};

// Per CUDA thread: each emulated thread runs on one host thread at a time.
inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace snnfast::emulated {

// What the launch code asks of the device: tests set it (snnfast_emulated::set_device) to
// reach every launch shape and both recurrent paths with small sizes.
struct Device {
  int multiprocessors = 4;
  int shared_memory_per_block = 48 * 1024;
  // Launches so far, of kernels whose threads run one after the other (Sync::None) and of
  // kernels that meet at barriers (Sync::Block): the tests see which path ran.
  int64_t launches = 0, synchronised_launches = 0;
};

inline Device& device() {
  static Device value;
  return value;
}

inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local unsigned char* block_shared_memory = nullptr;

inline void syncthreads() {
  if (block_barrier == nullptr) {
    std::fprintf(stderr, "emulated CUDA: __syncthreads() in a kernel launched with Sync::None\n");
    std::abort();
  }
  block_barrier->arrive_and_wait();
}

template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            bool block_sync, const Args&... args) {
  const size_t threads = size_t(block.x) * block.y * block.z;
  TORCH_CHECK(threads >= 1 && threads <= 1024, "emulated CUDA: ", threads, " threads per block");
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1, "emulated CUDA: an empty grid");
  TORCH_CHECK(shared_bytes <= static_cast<size_t>(device().shared_memory_per_block),
              "emulated CUDA: ", shared_bytes, " bytes of shared memory per block, the device has ",
              device().shared_memory_per_block);
  ++(block_sync ? device().synchronised_launches : device().launches);
  auto run_thread = [&](dim3 b, size_t t, unsigned char* shared, std::barrier<>* barrier) {
    gridDim = grid;
    blockDim = block;
    blockIdx = b;
    threadIdx = dim3(t % block.x, t / block.x % block.y, t / (size_t(block.x) * block.y));
    block_shared_memory = shared;
    block_barrier = barrier;
    kernel(args...);
    block_shared_memory = nullptr;
    block_barrier = nullptr;
  };
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx) {
        const dim3 b(bx, by, bz);
        std::vector<unsigned char> shared(shared_bytes, 0xFF);
        if (!block_sync) {
          for (size_t t = 0; t < threads; ++t) run_thread(b, t, shared.data(), nullptr);
          continue;
        }
        // A thread that has returned no longer counts at the barrier, as on a GPU.
        std::barrier<> barrier(static_cast<std::ptrdiff_t>(threads));
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (size_t t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            run_thread(b, t, shared.data(), &barrier);
            barrier.arrive_and_drop();
          });
        for (std::thread& thread : pool) thread.join();
      }
}

}  // namespace snnfast::emulated
