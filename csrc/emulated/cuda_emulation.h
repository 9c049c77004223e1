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
// what no thread wrote.
//
// Warp votes: __ballot_sync over a whole warp, in a kernel launched with Sync::Warp (or
// Sync::Block), whose threads then run as std::threads too; the lanes of each warp meet at a
// barrier of their own at every vote, as on a GPU. A vote whose mask is not every lane of
// the warp, or names a lane that has returned (undefined on a GPU), aborts. No shuffles; of
// the atomics, atomicExch on an int (a sequentially consistent exchange).
#pragma once

#include <atomic>
#include <barrier>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <algorithm>
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
#define __ballot_sync(mask, predicate) ::snnfast::emulated::ballot_sync(mask, predicate)
#define __popc(v) ::snnfast::emulated::popc(v)
#define atomicExch(address, value) ::snnfast::emulated::atomic_exch(address, value)

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
  // kernels whose threads meet (Sync::Block, Sync::Warp): the tests see which path ran.
  int64_t launches = 0, synchronised_launches = 0;
};

inline Device& device() {
  static Device value;
  return value;
}

inline thread_local std::barrier<>* block_barrier = nullptr;
inline thread_local unsigned char* block_shared_memory = nullptr;

[[noreturn]] inline void fail(const char* message) {
  std::fprintf(stderr, "emulated CUDA: %s\n", message);
  std::abort();
}

constexpr unsigned kWarpSize = 32;

// The lanes of one warp, which meet at `barrier` at every vote. Vote g is gathered in
// votes[g % 3]: a lane reads vote g's result after the barrier of vote g, and lane 0 clears
// the slot of vote g + 1 before that barrier, when every lane has read vote g - 2's (the
// slot's last use), having passed the barrier of vote g - 1.
struct Warp {
  explicit Warp(unsigned lanes_)
      : lanes(lanes_), full_mask(lanes_ == kWarpSize ? ~0u : (1u << lanes_) - 1), barrier(lanes_) {}
  const unsigned lanes, full_mask;
  std::barrier<> barrier;
  std::atomic<unsigned> votes[3] = {0, 0, 0};
  std::atomic<unsigned> returned{0};  // the lanes that have returned from the kernel
};

inline thread_local Warp* warp = nullptr;
inline thread_local unsigned lane = 0, votes_cast = 0;

inline unsigned ballot_sync(unsigned mask, bool predicate) {
  if (warp == nullptr) fail("__ballot_sync() in a kernel not launched with Sync::Warp or Sync::Block");
  if (mask != warp->full_mask) fail("__ballot_sync() with a mask other than every lane of the warp");
  if ((warp->returned.load() & mask) != 0) fail("__ballot_sync() names a lane that has returned");
  const unsigned slot = votes_cast % 3;
  ++votes_cast;
  if (lane == 0) warp->votes[(slot + 1) % 3].store(0);
  if (predicate) warp->votes[slot].fetch_or(1u << lane);
  warp->barrier.arrive_and_wait();
  return warp->votes[slot].load();
}

inline int popc(unsigned v) { return __builtin_popcount(v); }

inline int atomic_exch(int* address, int value) { return std::atomic_ref<int>(*address).exchange(value); }

inline void syncthreads() {
  if (block_barrier == nullptr) fail("__syncthreads() in a kernel launched with Sync::None");
  block_barrier->arrive_and_wait();
}

// concurrent: whether the threads of a block run at once (they meet at barriers or votes).
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t shared_bytes,
            bool concurrent, const Args&... args) {
  const size_t threads = size_t(block.x) * block.y * block.z;
  TORCH_CHECK(threads >= 1 && threads <= 1024, "emulated CUDA: ", threads, " threads per block");
  TORCH_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1, "emulated CUDA: an empty grid");
  TORCH_CHECK(shared_bytes <= static_cast<size_t>(device().shared_memory_per_block),
              "emulated CUDA: ", shared_bytes, " bytes of shared memory per block, the device has ",
              device().shared_memory_per_block);
  ++(concurrent ? device().synchronised_launches : device().launches);
  auto run_thread = [&](dim3 b, size_t t, unsigned char* shared, std::barrier<>* barrier, Warp* own_warp) {
    gridDim = grid;
    blockDim = block;
    blockIdx = b;
    threadIdx = dim3(t % block.x, t / block.x % block.y, t / (size_t(block.x) * block.y));
    block_shared_memory = shared;
    block_barrier = barrier;
    warp = own_warp;
    lane = static_cast<unsigned>(t % kWarpSize);
    votes_cast = 0;
    kernel(args...);
    if (own_warp != nullptr) {
      // A lane that has returned no longer counts at its warp's barrier.
      own_warp->returned.fetch_or(1u << lane);
      own_warp->barrier.arrive_and_drop();
    }
    block_shared_memory = nullptr;
    block_barrier = nullptr;
    warp = nullptr;
  };
  for (unsigned int bz = 0; bz < grid.z; ++bz)
    for (unsigned int by = 0; by < grid.y; ++by)
      for (unsigned int bx = 0; bx < grid.x; ++bx) {
        const dim3 b(bx, by, bz);
        std::vector<unsigned char> shared(shared_bytes, 0xFF);
        if (!concurrent) {
          for (size_t t = 0; t < threads; ++t) run_thread(b, t, shared.data(), nullptr, nullptr);
          continue;
        }
        // A thread that has returned no longer counts at the barrier, as on a GPU.
        std::barrier<> barrier(static_cast<std::ptrdiff_t>(threads));
        std::vector<std::unique_ptr<Warp>> warps;
        for (size_t t0 = 0; t0 < threads; t0 += kWarpSize)
          warps.push_back(std::make_unique<Warp>(static_cast<unsigned>(std::min<size_t>(kWarpSize, threads - t0))));
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (size_t t = 0; t < threads; ++t)
          pool.emplace_back([&, t] {
            run_thread(b, t, shared.data(), &barrier, warps[t / kWarpSize].get());
            barrier.arrive_and_drop();
          });
        for (std::thread& thread : pool) thread.join();
      }
}

}  // namespace snnfast::emulated
