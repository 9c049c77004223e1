// The properties of the emulated CUDA device, set by the tests to reach every launch shape
// (the multiprocessor count) and both recurrent paths (the shared memory per block), and
// its launch counts, by which they see which path ran.
#include "emulated/cuda_emulation.h"
#include <torch/library.h>

#include <vector>

namespace snnfast::emulated {
namespace {

void set_device(int64_t multiprocessors, int64_t shared_memory_per_block) {
  TORCH_CHECK(multiprocessors >= 1, "snnfast_emulated.set_device: multiprocessors must be >= 1, got ",
              multiprocessors);
  TORCH_CHECK(shared_memory_per_block >= 0 && shared_memory_per_block <= (1 << 20),
              "snnfast_emulated.set_device: shared_memory_per_block must be in [0, 1 MiB], got ",
              shared_memory_per_block);
  device().multiprocessors = static_cast<int>(multiprocessors);
  device().shared_memory_per_block = static_cast<int>(shared_memory_per_block);
}

std::vector<int64_t> launches() {
  return {device().launches, device().synchronised_launches};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(snnfast_emulated, m) {
  m.def("set_device(int multiprocessors, int shared_memory_per_block) -> ()", &set_device);
  // [launches of kernels with Sync::None, launches of kernels with Sync::Block] so far.
  m.def("launches() -> int[]", &launches);
}

}  // namespace snnfast::emulated
