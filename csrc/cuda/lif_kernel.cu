// Registers the CUDA kernels of the fused LIF op (lif_kernel.cuh).
//
// Only light c10/cuda headers are included (not ATen/cuda/CUDAContext.h, which pulls in
// cuBLAS and cuSPARSE), so that CI can compile this file with a bare nvcc (.ci/check_cuda.sh).
#include <torch/library.h>

#include "cuda/lif_kernel.cuh"
#include "event_linear.h"
#include "lif.h"

namespace snnfast {

// The events are the spikes the kernel wrote, converted by the event kernels (csrc/lif.h).
constexpr auto lif_events_cuda = lif_events_with<lif_forward_cuda, &cuda_event_kernels>;
// The current comes from event_linear's kernel, then lif_events (csrc/lif.h says why).
constexpr auto event_linear_lif_cuda = event_linear_lif_with<lif_forward_cuda, &cuda_event_kernels, false>;

TORCH_LIBRARY_IMPL(snnfast, CUDA, m) {
  m.impl("lif", TORCH_FN(lif_forward_with<lif_forward_cuda>));
  m.impl("lif_inference", TORCH_FN(lif_inference_with<lif_forward_cuda>));
  m.impl("lif_events", TORCH_FN(lif_events_cuda));
  m.impl("event_linear_lif", TORCH_FN(event_linear_lif_cuda));
  m.impl("lif_backward", TORCH_FN(lif_backward_with<lif_backward_cuda>));
}

}  // namespace snnfast
