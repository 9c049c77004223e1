// The one description of a LIF layer that the glue hands to every kernel (CPU and CUDA).
// Plain data: sizes, options and raw pointers, nothing from Python or ATen's Tensor.
// The neuron itself is defined in docs/neuron.md.
#pragma once

#include <cstdint>

namespace snnfast {

enum class Reset : int { Hard = 0, Soft = 1, None = 2 };

enum class Surrogate : int { Rectangle = 0, Triangle = 1, Sigmoid = 2, ATan = 3 };

// A run of T steps over B * N neurons, time-major: element (t, b, n) of a [T, B, N] buffer
// is at t * B * N + b * N + n. N is the product of the neuron shape F.
//
// Tensors of the input dtype ("scalar"): x, spikes, grad_spikes, grad_x.
// Tensors of the arithmetic dtype ("acc": float for half, bfloat16 and float; double for
// double): membrane, u_last, their gradients, the per-neuron parameters and every
// parameter gradient. Saving the membrane at arithmetic precision lets the backward pass recompute
// each spike exactly as the forward pass fired it.
struct LIFParams {
  int64_t T = 0;
  int64_t B = 0;
  int64_t N = 0;

  Reset reset = Reset::Hard;
  Surrogate surrogate = Surrogate::Rectangle;
  bool detach_reset = false;
  double v_reset = 0.0;
  double surrogate_param = 1.0;  // the width a (rectangle, triangle) or sharpness k (sigmoid, atan)

  // Per-neuron parameters: neuron n reads beta[n * beta_stride] (and so on). The stride is 0
  // for one value per layer, which the glue then passes as it is instead of broadcasting it
  // to N values on every call (a fixed cost that dominates short sequences); the glue
  // broadcasts channel values.
  const void* beta = nullptr;
  const void* alpha = nullptr;
  const void* threshold = nullptr;
  int64_t beta_stride = 1;
  int64_t alpha_stride = 1;
  int64_t threshold_stride = 1;
  // Initial state u_0: neuron (b, n) starts from u0[b * u0_batch_stride + n * u0_stride];
  // u0_batch_stride is 0 when one u0 is shared by the whole batch (the learnable IMP),
  // u0_stride 0 when one value is shared by every neuron (u0 absent: a single 0).
  const void* u0 = nullptr;
  int64_t u0_batch_stride = 0;
  int64_t u0_stride = 1;

  // Forward.
  const void* x = nullptr;   // [T, B, N]
  void* spikes = nullptr;    // [T, B, N]
  void* membrane = nullptr;  // [T, B, N], h_t before the reset; null: not saved (inference)
  void* u_last = nullptr;    // [B, N], the state u_T after the last reset
  // The spikes as events besides the dense tensor, emitted from the forward kernel's own
  // pass: a SpikeEvents of the glue (csrc/lif.h) that the kernel fills; null: none asked for.
  // Only the CPU kernel emits them; on CUDA the glue converts the spikes the kernel wrote
  // (lif_events_with in csrc/lif.h says why), and this stays null.
  void* events = nullptr;
  // The input current as events instead of x (the fused event_linear_lif op, on the CPU):
  // x_t[b, n] = bias[n] + the sum over the events k of row r = t * B + b, ascending, of
  // weight_t[current_indices[k] * N + n], k in [current_offsets[r], current_offsets[r + 1]),
  // the sum of the event_linear op in its order. weight_t and bias (null: none) are in the
  // input dtype; x is then null.
  const int64_t* current_offsets = nullptr;
  const int32_t* current_indices = nullptr;
  const void* weight_t = nullptr;
  const void* bias = nullptr;

  // Backward. grad_membrane and grad_u_last may be null (no gradient reached them): the CPU
  // kernels read a row of zeros in place of a missing row, the CUDA kernels a 0 (a null check
  // that every thread takes alike). x is needed only for grad_alpha.
  const void* grad_spikes = nullptr;    // [T, B, N]
  const void* grad_membrane = nullptr;  // [T, B, N]
  const void* grad_u_last = nullptr;    // [B, N]
  void* grad_x = nullptr;               // [T, B, N], null when x needs no gradient
  // Per-neuron-and-sample partial sums over time, [B, N]; null when not asked for. The glue
  // reduces them to each parameter's shape, so every sum has a fixed order.
  void* grad_beta = nullptr;
  void* grad_alpha = nullptr;
  void* grad_threshold = nullptr;
  void* grad_u0 = nullptr;
};

}  // namespace snnfast
