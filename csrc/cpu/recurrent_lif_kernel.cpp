// The fused neuron steps of the recurrent LIF op on the CPU. The glue (recurrent_lif.cpp)
// runs the time loop and the GEMMs; each step here is one pass over the B x N neurons,
// threads over rows of the batch, SIMD across the neurons of a row.
//
// Every (b, n) neuron is owned by one thread in each step and the steps run in order, so its
// partial sums are accumulated in a fixed order whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "recurrent_lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
namespace {

// Runs body(b) for each row of the batch; threads only where a step has enough neurons
// to pay for waking them (a step over 100 x 200 neurons takes some tens of microseconds).
template <typename Body>
void for_each_row(const LIFParams& p, const Body& body) {
  constexpr int64_t kNeuronsPerTask = 4096;
  const int64_t grain = std::max<int64_t>(1, kNeuronsPerTask / std::max<int64_t>(p.N, 1));
  at::parallel_for(0, p.B, grain, [&](int64_t first, int64_t last) {
    for (int64_t b = first; b < last; ++b) body(b);
  });
}

template <typename acc_t>
struct NeuronRow {
  const acc_t* beta;
  const acc_t* alpha;
  const acc_t* threshold;
  const acc_t* u0;  // u_0 of this row

  NeuronRow(const LIFParams& p, int64_t b)
      : beta(static_cast<const acc_t*>(p.beta)),
        alpha(static_cast<const acc_t*>(p.alpha)),
        threshold(static_cast<const acc_t*>(p.threshold)),
        u0(static_cast<const acc_t*>(p.u0) + b * p.u0_batch_stride) {}
};

template <typename acc_t, Reset R>
void step_forward(const RecurrentLIFParams& p, int64_t t) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const bool last = t == p.T - 1;
  for_each_row(p, [&](int64_t b) {
    const NeuronRow<acc_t> np(p, b);
    const int64_t row = t * BN + b * N;
    const acc_t* x = static_cast<const acc_t*>(p.x) + row;
    const acc_t* recurrent = static_cast<const acc_t*>(p.recurrent) + b * N;
    acc_t* membrane = static_cast<acc_t*>(p.membrane) + row;
    acc_t* spikes = static_cast<acc_t*>(p.spikes) + row;
    // u_{t-1} is recomputed from h_{t-1}, still in cache, instead of kept in a buffer.
    const acc_t* membrane_prev = t > 0 ? membrane - BN : nullptr;
    acc_t* u_last = last ? static_cast<acc_t*>(p.u_last) + b * N : nullptr;
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
      const acc_t u_prev = membrane_prev
                               ? state_after<R>(membrane_prev[n], np.threshold[n], v_reset)
                               : np.u0[n];
      const acc_t h = charge(u_prev, x[n] + recurrent[n], np.beta[n], np.alpha[n]);
      const acc_t spike = fire(h, np.threshold[n]);
      membrane[n] = h;
      spikes[n] = spike;
      if (u_last) u_last[n] = reset_membrane<R>(h, spike, np.threshold[n], v_reset);
    }
  });
}

template <typename acc_t, Reset R, Surrogate S>
void step_backward(const RecurrentLIFParams& p, int64_t t) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t param = static_cast<acc_t>(p.surrogate_param);
  const bool detach_reset = p.detach_reset;
  for_each_row(p, [&](int64_t b) {
    const NeuronRow<acc_t> np(p, b);
    const int64_t row = t * BN + b * N, state = b * N;
    const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
    const acc_t* membrane_prev = t > 0 ? membrane - BN : nullptr;
    const acc_t* grad_spikes = static_cast<const acc_t*>(p.grad_spikes) + row;
    const acc_t* grad_membrane =
        p.grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : nullptr;
    const acc_t* grad_recurrent = static_cast<const acc_t*>(p.grad_recurrent) + state;
    const acc_t* x = p.x ? static_cast<const acc_t*>(p.x) + row : nullptr;
    acc_t* grad_h = static_cast<acc_t*>(p.grad_h) + row;
    acc_t* grad_x = p.grad_x ? static_cast<acc_t*>(p.grad_x) + row : nullptr;
    acc_t* g_u = static_cast<acc_t*>(p.grad_u0) + state;
    acc_t* g_beta = p.grad_beta ? static_cast<acc_t*>(p.grad_beta) + state : nullptr;
    acc_t* g_alpha = p.grad_alpha ? static_cast<acc_t*>(p.grad_alpha) + state : nullptr;
    acc_t* g_threshold = p.grad_threshold ? static_cast<acc_t*>(p.grad_threshold) + state : nullptr;
#pragma omp simd
    for (int64_t n = 0; n < N; ++n) {
      const StepGrad<acc_t> g = backward_step<R, S>(
          membrane[n], grad_spikes[n] + grad_recurrent[n],
          grad_membrane ? grad_membrane[n] : acc_t(0), g_u[n], np.threshold[n], v_reset, param,
          detach_reset);
      grad_h[n] = g.h;
      if (grad_x) grad_x[n] = np.alpha[n] * g.h;
      if (g_beta) {
        const acc_t u_prev = membrane_prev
                                 ? state_after<R>(membrane_prev[n], np.threshold[n], v_reset)
                                 : np.u0[n];
        g_beta[n] += g.h * u_prev;
      }
      if (g_alpha) g_alpha[n] += g.h * x[n];  // the x part of I_t; the glue adds o_{t-1} V^T's
      if (g_threshold) g_threshold[n] += g.threshold;
      g_u[n] = np.beta[n] * g.h;
    }
  });
}

void forward_step_cpu(const RecurrentLIFParams& p, int64_t t, at::ScalarType acc) {
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_forward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] { step_forward<scalar_t, R>(p, t); });
  });
}

void backward_step_cpu(const RecurrentLIFParams& p, int64_t t, at::ScalarType acc) {
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_backward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] { step_backward<scalar_t, R, S>(p, t); });
    });
  });
}

constexpr RecurrentKernels kCPUKernels{forward_step_cpu, backward_step_cpu, nullptr, nullptr};

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCPUKernels>));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCPUKernels>));
}

}  // namespace snnfast
