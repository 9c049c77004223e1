// A bounded cache of the fused ops' large CPU outputs (spikes, membrane trace, grad_x).
//
// Why: at T = 1000, B = 64, N = 1024 each output is 262 MB, above glibc's largest mmap
// threshold (32 MiB), so with the C library's defaults every call maps fresh pages and the
// kernel zeroes each one on first touch: the fused op then runs 6x slower than in warm memory
// (docs/benchmarks.md#allocator). The cache keeps the blocks of freed outputs and hands them
// to the next call of the same size, so that a training loop writes into warm pages; PyTorch's
// own CPU allocator and the user's process are left as they are.
//
// Bounds: only blocks of at least kMinBytes are cached; the free blocks held never exceed the
// limit (SNNFAST_CPU_CACHE_MB, default min(4 GiB, RAM / 8); 0 turns the cache off); a free
// block unused for kIdleSeconds goes back to the system at the next cache operation, and
// release() returns them all at once.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace snnfast::output_cache {

inline constexpr size_t kMinBytes = size_t{4} << 20;
inline constexpr double kIdleSeconds = 10.0;

// at::empty(sizes, options) for a CPU tensor, its storage from the cache when large enough.
at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options);

struct Stats {
  int64_t limit_bytes;   // the most the free blocks may hold
  int64_t cached_bytes;  // held in free blocks now
  int64_t used_bytes;    // in blocks that back live tensors
  int64_t hits, misses;  // allocations served from a free block / by a fresh mapping
};
Stats stats();

// Returns every free block to the system.
void release();

// Sets the limit (0: cache nothing from now on) and trims the free blocks to it.
void set_limit(int64_t bytes);

}  // namespace snnfast::output_cache
