// The math of one LIF time step, forward and backward, for one neuron: written once here
// and inlined by every kernel (CPU and CUDA, lif and recurrent_lif). Equations and names
// follow docs/neuron.md. acc_t is the arithmetic type (float or double).
//
// A kernel calls three things: forward_step, backward_step and previous_state. They take and
// return plain scalars and structs, so that the CPU loops over neurons vectorize.
//
// One arithmetic on every device: no multiply-add is fused (the CPU kernels are built with
// -ffp-contract=off, nvcc with --fmad=false, flags.py), so the CPU and CUDA kernels round
// every operation alike and give the same bits (tests/test_emulated_cuda.py).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "snnfast/neuron.h"

#if defined(__CUDACC__) || defined(__HIPCC__)
#define SNNFAST_HD __host__ __device__ __forceinline__
#else
#define SNNFAST_HD inline
#endif

namespace snnfast {

// expf as plain arithmetic (Cephes' polynomial, within 2 ulp of expf), on the CPU and the
// GPU alike: the CPU compiler can vectorize it (a call to expf would keep the loop scalar),
// and both devices give the same bits for the sigmoid surrogate.
SNNFAST_HD float exp_(float v) {
  v = v < -87.0f ? -87.0f : (v > 88.0f ? 88.0f : v);
  const float n = floorf(v * 1.44269504088896341f + 0.5f);
  float r = v - n * 0.693359375f;
  r -= n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n through the exponent bits; n is within [-126, 127] after the clamp above.
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
SNNFAST_HD double exp_(double v) { return exp(v); }

// The parameters and initial state of neuron (b, n) of a layer, in the arithmetic type.
template <typename acc_t>
struct NeuronValues {
  acc_t beta, alpha, threshold, u0;
};

template <typename acc_t>
SNNFAST_HD NeuronValues<acc_t> neuron_values(const LIFParams& p, int64_t b, int64_t n) {
  return {static_cast<const acc_t*>(p.beta)[n * p.beta_stride],
          static_cast<const acc_t*>(p.alpha)[n * p.alpha_stride],
          static_cast<const acc_t*>(p.threshold)[n * p.threshold_stride],
          static_cast<const acc_t*>(p.u0)[b * p.u0_batch_stride + n * p.u0_stride]};
}

// s(x), x = h - threshold: the surrogate derivative of the Heaviside spike.
// surrogate_param is the width a (rectangle, triangle) or the sharpness k (sigmoid, atan).
template <Surrogate S, typename acc_t>
SNNFAST_HD acc_t surrogate_grad(acc_t x, acc_t surrogate_param) {
  const acc_t a = surrogate_param;
  const acc_t ax = x < acc_t(0) ? -x : x;
  if constexpr (S == Surrogate::Rectangle) {
    return ax < a * acc_t(0.5) ? acc_t(1) / a : acc_t(0);
  } else if constexpr (S == Surrogate::Triangle) {
    const acc_t r = acc_t(1) - ax / a;
    return r < acc_t(0) ? acc_t(0) : r / a;  // a NaN stays NaN, as in torch.clamp
  } else if constexpr (S == Surrogate::Sigmoid) {
    const acc_t sg = acc_t(1) / (acc_t(1) + exp_(-a * x));
    return a * sg * (acc_t(1) - sg);
  } else {  // ATan
    const acc_t z = acc_t(M_PI / 2) * a * x;
    return (a * acc_t(0.5)) / (acc_t(1) + z * z);
  }
}

// o_t = H(h_t - threshold), with H(0) = 1.
template <typename acc_t>
SNNFAST_HD acc_t fire(acc_t h, acc_t threshold) {
  return static_cast<acc_t>(h >= threshold);
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

// The state u_t after a step whose charged membrane was h_t: the spike is recomputed from
// h_t exactly as the forward pass fired it (the trace is saved at arithmetic precision).
template <Reset R, typename acc_t>
SNNFAST_HD acc_t state_after(acc_t h, acc_t threshold, acc_t v_reset) {
  return reset_membrane<R>(h, fire(h, threshold), threshold, v_reset);
}

// The state u_{t-1} that step t started from: rebuilt from the saved trace h_{t-1} for t >= 1,
// u_0 at the first step (where h_prev is not read: pass anything).
template <Reset R, typename acc_t>
SNNFAST_HD acc_t previous_state(bool first_step, acc_t h_prev, acc_t u0, acc_t threshold,
                                acc_t v_reset) {
  return first_step ? u0 : state_after<R>(h_prev, threshold, v_reset);
}

// What step t of the forward pass gives.
template <typename acc_t>
struct ForwardStep {
  acc_t membrane;  // h_t, the charged potential before the reset (the saved trace)
  acc_t spike;     // o_t
  acc_t state;     // u_t, after the reset
};

// One step of the neuron from the state u_{t-1} and the input current I_t.
template <Reset R, typename acc_t>
SNNFAST_HD ForwardStep<acc_t> forward_step(acc_t u_prev, acc_t current, acc_t beta, acc_t alpha,
                                           acc_t threshold, acc_t v_reset) {
  const acc_t h = charge(u_prev, current, beta, alpha);
  const acc_t spike = fire(h, threshold);
  return {h, spike, reset_membrane<R>(h, spike, threshold, v_reset)};
}

// BPTT through one step. s = s(h_t - threshold) is the surrogate derivative of the spike.
// The threshold enters twice: through the spike, o = H(h - threshold), and, unless the reset
// is detached, through the reset (the soft reset also subtracts the threshold itself).
// Plain scalars in and out, so that the CPU loop over neurons vectorizes.
//
// A detached reset has no path at all, as in autograd: its terms are selected away rather
// than multiplied by 0, which would turn a NaN or infinite membrane into a NaN gradient
// that spreads back to every earlier step (autograd gives 0 there).
template <typename acc_t>
SNNFAST_HD acc_t through_reset(acc_t value, bool detach_reset) {
  return detach_reset ? acc_t(0) : value;
}

// du_t / dh_t
template <Reset R, typename acc_t>
SNNFAST_HD acc_t du_dh(acc_t h, acc_t threshold, acc_t v_reset, acc_t s, bool detach_reset) {
  if constexpr (R == Reset::Hard) {
    return acc_t(1) - fire(h, threshold) + through_reset((v_reset - h) * s, detach_reset);
  } else if constexpr (R == Reset::Soft) {
    return acc_t(1) - through_reset(threshold * s, detach_reset);
  } else {
    return acc_t(1);
  }
}

// du_t / dthreshold
template <Reset R, typename acc_t>
SNNFAST_HD acc_t du_dthreshold(acc_t h, acc_t threshold, acc_t v_reset, acc_t s,
                               bool detach_reset) {
  if constexpr (R == Reset::Hard) {
    return through_reset((h - v_reset) * s, detach_reset);
  } else if constexpr (R == Reset::Soft) {
    return through_reset(threshold * s, detach_reset) - fire(h, threshold);
  } else {
    return acc_t(0);
  }
}

// g_h, the gradient reaching h_t, from the gradients of o_t and h_t at the outputs and the
// gradient g_u arriving at u_t from step t + 1.
template <Reset R, typename acc_t>
SNNFAST_HD acc_t grad_h(acc_t h, acc_t threshold, acc_t v_reset, acc_t s, bool detach_reset,
                        acc_t g_spike, acc_t g_membrane, acc_t g_u) {
  return g_spike * s + g_u * du_dh<R>(h, threshold, v_reset, s, detach_reset) + g_membrane;
}

// This step's share of the threshold gradient.
template <Reset R, typename acc_t>
SNNFAST_HD acc_t grad_threshold(acc_t h, acc_t threshold, acc_t v_reset, acc_t s,
                                bool detach_reset, acc_t g_spike, acc_t g_u) {
  return g_u * du_dthreshold<R>(h, threshold, v_reset, s, detach_reset) - g_spike * s;
}

// What BPTT through step t gives. The parameter gradients of the step are grad_h * u_{t-1}
// (beta), grad_h * I_t (alpha) and grad_threshold; each kernel sums them over time.
template <typename acc_t>
struct BackwardStep {
  acc_t grad_h;          // g_h_t
  acc_t grad_current;    // g_I_t = alpha g_h_t, which is g_x_t
  acc_t grad_u_prev;     // g_u_{t-1} = beta g_h_t, carried to step t - 1
  acc_t grad_threshold;  // this step's share of the threshold gradient
};

// BPTT through one step from the saved h_t, the gradients reaching o_t and h_t from the
// outputs (g_spike, g_membrane: 0 where none) and g_u arriving at u_t from step t + 1.
template <Reset R, Surrogate S, typename acc_t>
SNNFAST_HD BackwardStep<acc_t> backward_step(acc_t h, acc_t g_spike, acc_t g_membrane, acc_t g_u,
                                             acc_t beta, acc_t alpha, acc_t threshold,
                                             acc_t v_reset, acc_t surrogate_param,
                                             bool detach_reset) {
  const acc_t s = surrogate_grad<S>(h - threshold, surrogate_param);
  const acc_t g_h = grad_h<R>(h, threshold, v_reset, s, detach_reset, g_spike, g_membrane, g_u);
  return {g_h, alpha * g_h, beta * g_h,
          grad_threshold<R>(h, threshold, v_reset, s, detach_reset, g_spike, g_u)};
}

}  // namespace snnfast
