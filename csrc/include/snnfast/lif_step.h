// The math of one LIF time step, forward and backward, for one neuron: written once here
// and inlined by the CPU kernel and the CUDA kernel alike. Equations and names follow
// shared/design/neuron-spec.md. acc_t is the arithmetic type (float or double).
#pragma once

#include <cmath>

#include "snnfast/neuron.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SNNFAST_HD __host__ __device__ __forceinline__
#else
#define SNNFAST_HD inline
#endif

namespace snnfast {

SNNFAST_HD float exp_(float v) { return expf(v); }
SNNFAST_HD double exp_(double v) { return exp(v); }

// s(x), x = h - threshold: the surrogate derivative of the Heaviside spike.
template <Surrogate S, typename acc_t>
SNNFAST_HD acc_t surrogate_grad(acc_t x, acc_t param) {
  const acc_t ax = x < acc_t(0) ? -x : x;
  if constexpr (S == Surrogate::Rectangle) {
    return ax < param * acc_t(0.5) ? acc_t(1) / param : acc_t(0);
  } else if constexpr (S == Surrogate::Triangle) {
    const acc_t r = acc_t(1) - ax / param;
    return r > acc_t(0) ? r / param : acc_t(0);
  } else if constexpr (S == Surrogate::Sigmoid) {
    const acc_t sg = acc_t(1) / (acc_t(1) + exp_(-param * x));
    return param * sg * (acc_t(1) - sg);
  } else {  // ATan
    const acc_t z = acc_t(M_PI / 2) * param * x;
    return (param * acc_t(0.5)) / (acc_t(1) + z * z);
  }
}

// o_t = H(h_t - threshold), with H(0) = 1.
template <typename acc_t>
SNNFAST_HD acc_t fire(acc_t h, acc_t threshold) {
  return h >= threshold ? acc_t(1) : acc_t(0);
}

// u_t from h_t and o_t.
template <Reset R, typename acc_t>
SNNFAST_HD acc_t reset_membrane(acc_t h, acc_t spike, acc_t threshold, acc_t v_reset) {
  if constexpr (R == Reset::Hard) {
    return spike * v_reset + (acc_t(1) - spike) * h;
  } else if constexpr (R == Reset::Soft) {
    return h - threshold * spike;
  } else {
    return h;
  }
}

// h_t = beta * u_{t-1} + alpha * I_t: charge.
template <typename acc_t>
SNNFAST_HD acc_t charge(acc_t u_prev, acc_t input, acc_t beta, acc_t alpha) {
  return beta * u_prev + alpha * input;
}

// The state u_{t-1} that step t started from, recomputed from the saved h_{t-1}.
template <Reset R, typename acc_t>
SNNFAST_HD acc_t state_after(acc_t h, acc_t threshold, acc_t v_reset) {
  return reset_membrane<R>(h, fire(h, threshold), threshold, v_reset);
}

template <typename acc_t>
struct StepGrad {
  acc_t h;          // g_h: the gradient reaching h_t
  acc_t threshold;  // this step's share of the threshold gradient
};

// One step of BPTT. g_spike and g_membrane are the gradients of o_t and h_t from the
// outputs, g_u the gradient arriving at u_t from step t + 1. The threshold enters twice:
// through the spike, o = H(h - threshold), and, unless the reset is detached, through the
// reset (for the soft reset the threshold is also the size of the step it subtracts).
template <Reset R, Surrogate S, typename acc_t>
SNNFAST_HD StepGrad<acc_t> backward_step(acc_t h, acc_t g_spike, acc_t g_membrane, acc_t g_u,
                                         acc_t threshold, acc_t v_reset, acc_t param,
                                         bool detach_reset) {
  const acc_t s = surrogate_grad<S>(h - threshold, param);
  acc_t du_dh = acc_t(1);
  acc_t du_dthreshold = acc_t(0);
  if constexpr (R == Reset::Hard) {
    const acc_t spike = fire(h, threshold);
    du_dh = acc_t(1) - spike;
    if (!detach_reset) {
      du_dh += (v_reset - h) * s;
      du_dthreshold = -(v_reset - h) * s;
    }
  } else if constexpr (R == Reset::Soft) {
    const acc_t spike = fire(h, threshold);
    du_dthreshold = -spike;
    if (!detach_reset) {
      du_dh -= threshold * s;
      du_dthreshold += threshold * s;
    }
  }
  StepGrad<acc_t> g;
  g.h = g_spike * s + g_u * du_dh + g_membrane;
  g.threshold = g_u * du_dthreshold - g_spike * s;
  return g;
}

}  // namespace snnfast
