// The CUDA kernels of the recurrent LIF op (csrc/cuda/recurrent_lif_kernel.cuh) on the
// emulated device, registered as the CPU kernels of torch.ops.snnfast_emulated.recurrent_lif
// through the same glue and kernel table as the real ones: the persistent kernels where V
// fits in the emulated device's shared memory, else the per-step kernels with the glue's
// GEMM (on the CPU, where cuBLAS runs it on a GPU).
#include <torch/library.h>

#include "cuda/recurrent_lif_kernel.cuh"

namespace snnfast {

TORCH_LIBRARY_IMPL(snnfast_emulated, CPU, m) {
  m.impl("recurrent_lif_inference", TORCH_FN(recurrent_lif_inference_with<&kCUDAKernels>));
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCUDAKernels>));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCUDAKernels>));
}

}  // namespace snnfast
