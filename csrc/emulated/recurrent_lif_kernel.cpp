// The CUDA kernels of the recurrent LIF op (csrc/cuda/recurrent_lif_kernel.cuh) on the
// emulated device, registered as the CPU kernels of torch.ops.snnfast_emulated.recurrent_lif
// through the same glue and kernel table as the real ones: the persistent kernels where V
// fits in the emulated device's shared memory, else the per-step kernels with the glue's
// GEMM (on the CPU, where cuBLAS runs it on a GPU).
#include <torch/library.h>

#include "cuda/recurrent_lif_kernel.cuh"
#include "event_linear.h"

namespace snnfast {

// The events are the spikes the steps wrote, converted by the event kernels (csrc/recurrent_lif.h).
constexpr auto recurrent_lif_events_cuda = recurrent_lif_events_with<&kCUDAKernels, &cuda_event_kernels>;

TORCH_LIBRARY_IMPL(snnfast_emulated, CPU, m) {
  m.impl("recurrent_lif_inference", TORCH_FN(recurrent_lif_inference_with<&kCUDAKernels>));
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCUDAKernels>));
  m.impl("recurrent_lif_events", TORCH_FN(recurrent_lif_events_cuda));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCUDAKernels>));
}

}  // namespace snnfast
