// The description of a recurrent LIF layer that the glue hands to its kernels: a LIFParams
// over [T, B, N], with I_t = x_t + o_{t-1} V^T as the input current (docs/neuron.md), plus
// the recurrent weights and the buffers that carry the recurrence between time steps.
#pragma once

#include "snnfast/neuron.h"

namespace snnfast {

// Every tensor is in the arithmetic dtype (float or double): the op computes in it and the
// glue casts x, spikes and grad_x from and to the input dtype. The LIFParams fields keep
// their meaning, with three differences:
//  - grad_x is always given: g_x_t = g_I_t = alpha g_h_t, which the recurrence
//    (g_o_{t-1} += g_I_t V) and g_V need whether or not x needs a gradient;
//  - grad_u (below) replaces grad_u0, which stays null;
//  - the parameter-gradient partial sums are accumulated (+=) into buffers the glue zeroes,
//    so that a kernel may run one step at a time;
//  - membrane is null in the forward pass of the inference op; u_last then holds the state
//    u_t from step to step (the per-step kernels read it back instead of the trace).
struct RecurrentLIFParams : LIFParams {
  const void* V = nullptr;  // [N, N]: I_t = x_t + o_{t-1} V^T; g_o_{t-1} += g_I_t V

  // Truncated BPTT through the recurrent spikes: the backward pass lets no gradient reach
  // o_{t-1} through V (g_o_{t-1} += g_I_t V is left out); V's own gradient is unchanged.
  bool detach_recurrent = false;

  // [B, N], g_u: the gradient of the state, carried from step to step. The glue starts it at
  // grad_u_last (or 0) and, once step 0 has run, it holds the gradient of u0.
  void* grad_u = nullptr;

  // Per-step kernels: the recurrent term of the step being run, [B, N]; the glue writes it
  // with a GEMM between steps and zeroes it for the first step.
  const void* recurrent = nullptr;       // forward step t: o_{t-1} V^T
  const void* grad_recurrent = nullptr;  // backward step t: g_I_{t+1} V, the gradient
                                         // reaching o_t through V

  // Forward steps that emit the events of their spikes (p.events set; the CPU's): the
  // device's lists that step t adds the neurons that fired to (RecurrentKernels::
  // forward_emitting in csrc/recurrent_lif.h); else null.
  void* step_events = nullptr;

  // [T, B, N], g_h_t; only when alpha needs a gradient (its recurrent part, see
  // recurrent_lif.cpp), else null.
  void* grad_h = nullptr;
};

}  // namespace snnfast
