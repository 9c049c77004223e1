// Registers the CUDA kernels of the recurrent LIF op (recurrent_lif_kernel.cuh).
#include <torch/library.h>

#include "cuda/recurrent_lif_kernel.cuh"

namespace snnfast {

TORCH_LIBRARY_IMPL(snnfast, CUDA, m) {
  m.impl("recurrent_lif_inference", TORCH_FN(recurrent_lif_inference_with<&kCUDAKernels>));
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCUDAKernels>));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCUDAKernels>));
}

}  // namespace snnfast
