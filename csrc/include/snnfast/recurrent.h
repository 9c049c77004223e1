// The description of a recurrent LIF layer that the glue hands to its kernels: a LIFParams
// over [T, B, N], with I_t = x_t + o_{t-1} V^T as the input current (neuron-spec.md), plus
// the recurrent weights and the buffers that carry the recurrence between time steps.
#pragma once

#include "snnfast/neuron.h"

namespace snnfast {

// Every tensor is in the arithmetic dtype (float or double): the op computes in it and the
// glue casts x, spikes and grad_x from and to the input dtype. The LIFParams fields keep
// their meaning, with two differences: grad_u0 is always given, because it carries the
// gradient of u_t from step to step, and the parameter-gradient partial sums are
// accumulated (+=) into buffers the glue zeroes, so that a kernel may run one step at a time.
//
// The backward pass works with g_h, the gradient reaching h_t, rather than g_I = alpha g_h:
// g_o_{t-1} = g_I_t V = g_h_t alpha_V, and the glue gets g_V and the recurrent part of
// g_alpha from the one product g_h^T o_{t-1} (see recurrent_lif.cpp).
struct RecurrentLIFParams : LIFParams {
  const void* V = nullptr;        // forward: [N, N], I_t = x_t + o_{t-1} V^T
  const void* alpha_V = nullptr;  // backward: [N, N], alpha_V[k, n] = alpha_k V[k, n]

  // Per-step kernels: the recurrent term of the step being run, [B, N]; the glue writes it
  // with a GEMM between steps and zeroes it for the first step.
  const void* recurrent = nullptr;       // forward step t: o_{t-1} V^T
  const void* grad_recurrent = nullptr;  // backward step t: g_h_{t+1} alpha_V, the gradient
                                         // reaching o_t through V

  void* grad_h = nullptr;  // backward output: [T, B, N], g_h_t
};

}  // namespace snnfast
