// Registers the CUDA kernels of the event ops (event_linear_kernel.cuh).
#include <torch/library.h>

#include "cuda/event_linear_kernel.cuh"

namespace snnfast {

const EventKernels cuda_event_kernels = kCUDAEventKernels;

TORCH_LIBRARY_IMPL(snnfast, CUDA, m) {
  m.impl("spikes_to_events", TORCH_FN(spikes_to_events_with<&kCUDAEventKernels>));
  m.impl("spikes_to_bits", TORCH_FN(spikes_to_bits_with<&kCUDAEventKernels>));
  m.impl("bits_to_spikes", TORCH_FN(bits_to_spikes_with<&kCUDAEventKernels>));
  m.impl("event_linear", TORCH_FN(event_linear_with<&kCUDAEventKernels>));
  m.impl("event_linear_weight_grad", TORCH_FN(event_linear_weight_grad_with<&kCUDAEventKernels>));
}

}  // namespace snnfast
