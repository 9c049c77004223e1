// The bounded cache of large CPU outputs: see output_cache.h for why and its bounds.
#include "output_cache.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

#include "op_library.h"

namespace snnfast::output_cache {
namespace {

// Blocks are whole huge pages, so that madvise(MADV_HUGEPAGE) can back them with 2 MiB pages
// (one fault per 2 MiB on first touch instead of 512) and a block fits every request that
// rounds up to its size.
constexpr size_t kBlockAlign = size_t{2} << 20;

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

int64_t default_limit() {
  if (const char* mb = std::getenv("SNNFAST_CPU_CACHE_MB")) {
    char* end = nullptr;
    const long long value = std::strtoll(mb, &end, 10);
    TORCH_CHECK(end != mb && *end == '\0' && value >= 0,
                "snnfast: SNNFAST_CPU_CACHE_MB must be a whole number of MiB >= 0, got '", mb, "'");
    return static_cast<int64_t>(value) << 20;
  }
  const int64_t ram = static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
  return std::min<int64_t>(int64_t{4} << 30, ram / 8);
}

struct Block {
  void* ptr;
  size_t bytes;
  double freed_at;
};

void unmap(const std::vector<Block*>& blocks) {
  for (Block* b : blocks) {
    munmap(b->ptr, b->bytes);
    delete b;
  }
}

class Cache {
 public:
  Block* take(size_t bytes) {
    const size_t rounded = (bytes + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
    std::vector<Block*> idle;
    Block* found = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      idle = take_idle_locked(now_seconds());
      // The smallest free block that fits, if it wastes at most an eighth (a large block
      // kept for a small request would hold memory the next large request then maps anew).
      auto it = free_.lower_bound(rounded);
      if (it != free_.end() && it->first <= rounded + std::max(kBlockAlign, rounded / 8)) {
        found = it->second;
        free_.erase(it);
        cached_bytes_ -= found->bytes;
        ++hits_;
      } else {
        ++misses_;
      }
      if (found != nullptr) used_bytes_ += found->bytes;
    }
    unmap(idle);
    if (found != nullptr) return found;
    void* ptr = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    TORCH_CHECK(ptr != MAP_FAILED, "snnfast: out of memory: could not map ", rounded,
                " bytes for an output");
#ifdef MADV_HUGEPAGE
    madvise(ptr, rounded, MADV_HUGEPAGE);  // advice only: without THP nothing changes
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    used_bytes_ += rounded;
    return new Block{ptr, rounded, 0.0};
  }

  void give_back(Block* block) {
    std::vector<Block*> gone;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const double now = now_seconds();
      used_bytes_ -= block->bytes;
      block->freed_at = now;
      gone = take_idle_locked(now);
      free_.emplace(block->bytes, block);
      cached_bytes_ += block->bytes;
      trim_locked(limit_, gone);
    }
    unmap(gone);
  }

  void release() { set_limit_and_trim(-1); }

  void set_limit(int64_t bytes) {
    TORCH_CHECK(bytes >= 0, "snnfast.output_cache.set_limit: bytes must be >= 0, got ", bytes);
    set_limit_and_trim(bytes);
  }

  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {limit_, cached_bytes_, used_bytes_, hits_, misses_};
  }

  bool enabled() {
    std::lock_guard<std::mutex> lock(mutex_);
    return limit_ > 0;
  }

 private:
  // limit < 0: release everything but keep the limit.
  void set_limit_and_trim(int64_t limit) {
    std::vector<Block*> gone;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (limit >= 0) limit_ = limit;
      trim_locked(limit < 0 ? 0 : limit_, gone);
    }
    unmap(gone);
  }

  // Removes the free blocks that have not been used for kIdleSeconds.
  std::vector<Block*> take_idle_locked(double now) {
    std::vector<Block*> idle;
    for (auto it = free_.begin(); it != free_.end();) {
      if (now - it->second->freed_at > kIdleSeconds) {
        cached_bytes_ -= it->second->bytes;
        idle.push_back(it->second);
        it = free_.erase(it);
      } else {
        ++it;
      }
    }
    return idle;
  }

  // Removes the least recently freed blocks until the free ones hold at most `limit` bytes.
  void trim_locked(int64_t limit, std::vector<Block*>& gone) {
    while (cached_bytes_ > limit) {
      auto oldest = std::min_element(free_.begin(), free_.end(), [](const auto& a, const auto& b) {
        return a.second->freed_at < b.second->freed_at;
      });
      cached_bytes_ -= oldest->second->bytes;
      gone.push_back(oldest->second);
      free_.erase(oldest);
    }
  }

  std::mutex mutex_;
  std::multimap<size_t, Block*> free_;
  int64_t limit_ = default_limit();
  int64_t cached_bytes_ = 0, used_bytes_ = 0, hits_ = 0, misses_ = 0;
};

// Never destroyed: a tensor freed during the interpreter's shutdown still gives its block back.
Cache& cache() {
  static Cache* instance = new Cache();
  return *instance;
}

void give_back(void* block) { cache().give_back(static_cast<Block*>(block)); }

// An allocator only for the storages that empty() makes, so that resizing one of them (rare)
// still allocates through it.
struct CachingAllocator final : c10::Allocator {
  c10::DataPtr allocate(size_t bytes) override {
    if (bytes < kMinBytes || !cache().enabled()) return c10::GetCPUAllocator()->allocate(bytes);
    Block* block = cache().take(bytes);
    return {block->ptr, block, &give_back, c10::Device(c10::DeviceType::CPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

CachingAllocator caching_allocator;

}  // namespace

at::Tensor empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const size_t bytes = c10::multiply_integers(sizes) * options.dtype().itemsize();
  if (!options.device().is_cpu() || bytes < kMinBytes || !cache().enabled())
    return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &caching_allocator,
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   c10::typeMetaToScalarType(options.dtype()), std::nullopt);
}

Stats stats() { return cache().stats(); }
void release() { cache().release(); }
void set_limit(int64_t bytes) { cache().set_limit(bytes); }

SNNFAST_LIBRARY_FRAGMENT(m) {
  // [limit, cached, used, hits, misses] in bytes and counts (snnfast.output_cache.stats()).
  m.def("output_cache_stats() -> int[]", [] {
    const Stats s = stats();
    return std::vector<int64_t>{s.limit_bytes, s.cached_bytes, s.used_bytes, s.hits, s.misses};
  });
  m.def("output_cache_release() -> ()", [] { release(); });
  m.def("output_cache_set_limit(int bytes) -> ()", [](int64_t bytes) { set_limit(bytes); });
}

}  // namespace snnfast::output_cache
