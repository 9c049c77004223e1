// The fused neuron steps of the recurrent LIF op on the CPU. The glue (recurrent_lif.cpp)
// runs the time loop and the GEMMs, one block of batch rows per thread; each step here is
// one pass over the neurons of the block's rows, SIMD across the neurons of a row (a row is
// read from memory once; the loops over its optional outputs run on it in L1).
//
// Every (b, n) neuron belongs to one thread and the steps run in order, so its partial sums
// are accumulated in a fixed order whatever the thread count.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <type_traits>

#include "recurrent_lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
namespace {

template <typename acc_t>
struct NeuronRow {
  const acc_t* beta;
  const acc_t* alpha;
  const acc_t* threshold;
  const acc_t* u0;  // u_0 of this row

  // The parameters of neurons n0, n0 + 1, ... of batch row b.
  NeuronRow(const LIFParams& p, int64_t b, int64_t n0)
      : beta(static_cast<const acc_t*>(p.beta) + n0),
        alpha(static_cast<const acc_t*>(p.alpha) + n0),
        threshold(static_cast<const acc_t*>(p.threshold) + n0),
        u0(static_cast<const acc_t*>(p.u0) + b * p.u0_batch_stride + n0) {}
};

// The state u_{t-1} of a row: recomputed from h_{t-1}, still in cache, instead of kept in a
// buffer; u0 at the first step.
template <typename acc_t, Reset R>
void previous_state(acc_t* u_prev, const acc_t* membrane_prev, const NeuronRow<acc_t>& np,
                    acc_t v_reset, int64_t N) {
  if (membrane_prev == nullptr) {
    std::copy(np.u0, np.u0 + N, u_prev);
    return;
  }
#pragma omp simd
  for (int64_t n = 0; n < N; ++n)
    u_prev[n] = state_after<R>(membrane_prev[n], np.threshold[n], v_reset);
}

// Rows are processed in pieces of kChunk neurons so that the scratch rows stay on the stack
// and in L1; each inner loop is a branch-free SIMD loop.
constexpr int64_t kChunk = 256;

template <typename acc_t, Reset R>
void step_forward(const RecurrentLIFParams& p, int64_t t, int64_t row_begin, int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const bool last = t == p.T - 1;
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {
      const int64_t len = std::min(kChunk, N - n0);
      const NeuronRow<acc_t> np(p, b, n0);
      const int64_t row = t * BN + b * N + n0;
      const acc_t* x = static_cast<const acc_t*>(p.x) + row;
      const acc_t* recurrent = static_cast<const acc_t*>(p.recurrent) + b * N + n0;
      acc_t* membrane = static_cast<acc_t*>(p.membrane) + row;
      acc_t* spikes = static_cast<acc_t*>(p.spikes) + row;
      acc_t u_prev[kChunk];
      previous_state<acc_t, R>(u_prev, t > 0 ? membrane - BN : nullptr, np, v_reset, len);
#pragma omp simd
      for (int64_t n = 0; n < len; ++n) {
        const acc_t h = charge(u_prev[n], x[n] + recurrent[n], np.beta[n], np.alpha[n]);
        membrane[n] = h;
        spikes[n] = fire(h, np.threshold[n]);
      }
      if (last) {
        acc_t* u_last = static_cast<acc_t*>(p.u_last) + b * N + n0;
#pragma omp simd
        for (int64_t n = 0; n < len; ++n)
          u_last[n] = state_after<R>(membrane[n], np.threshold[n], v_reset);
      }
    }
  }
}

template <typename acc_t, Reset R, Surrogate S>
void step_backward(const RecurrentLIFParams& p, int64_t t, int64_t row_begin, int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t param = static_cast<acc_t>(p.surrogate_param);
  const bool detach_reset = p.detach_reset;
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t n0 = 0; n0 < N; n0 += kChunk) {
      const int64_t len = std::min(kChunk, N - n0);
      const NeuronRow<acc_t> np(p, b, n0);
      const int64_t row = t * BN + b * N + n0, state = b * N + n0;
      const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
      const acc_t* grad_spikes = static_cast<const acc_t*>(p.grad_spikes) + row;
      const acc_t* grad_recurrent = static_cast<const acc_t*>(p.grad_recurrent) + state;
      acc_t* grad_x = static_cast<acc_t*>(p.grad_x) + row;
      acc_t* g_u = static_cast<acc_t*>(p.grad_u0) + state;
      // g_h_t, kept on the stack for the optional outputs, and the gradients of I_t and u_{t-1}.
      acc_t grad_h[kChunk];
      auto core = [&](auto with_grad_membrane) {
        const acc_t* grad_membrane =
            with_grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : nullptr;
        acc_t g_threshold[kChunk];
#pragma omp simd
        for (int64_t n = 0; n < len; ++n) {
          const acc_t h = membrane[n], g_spike = grad_spikes[n] + grad_recurrent[n];
          const acc_t s = surrogate_grad<S>(h - np.threshold[n], param);
          const acc_t g_h = snnfast::grad_h<R>(h, np.threshold[n], v_reset, s, detach_reset, g_spike,
                                               with_grad_membrane ? grad_membrane[n] : acc_t(0),
                                               g_u[n]);
          grad_h[n] = g_h;
          grad_x[n] = np.alpha[n] * g_h;
          g_threshold[n] =
              grad_threshold<R>(h, np.threshold[n], v_reset, s, detach_reset, g_spike, g_u[n]);
          g_u[n] = np.beta[n] * g_h;
        }
        if (p.grad_threshold) {
          acc_t* sum = static_cast<acc_t*>(p.grad_threshold) + state;
#pragma omp simd
          for (int64_t n = 0; n < len; ++n) sum[n] += g_threshold[n];
        }
      };
      if (p.grad_membrane) {
        core(std::true_type{});
      } else {
        core(std::false_type{});
      }
      if (p.grad_beta) {
        acc_t u_prev[kChunk];
        previous_state<acc_t, R>(u_prev, t > 0 ? membrane - BN : nullptr, np, v_reset, len);
        acc_t* sum = static_cast<acc_t*>(p.grad_beta) + state;
#pragma omp simd
        for (int64_t n = 0; n < len; ++n) sum[n] += grad_h[n] * u_prev[n];
      }
      if (p.grad_alpha) {  // the x part of I_t; the glue adds the part of o_{t-1} V^T
        const acc_t* x = static_cast<const acc_t*>(p.x) + row;
        acc_t* sum = static_cast<acc_t*>(p.grad_alpha) + state;
#pragma omp simd
        for (int64_t n = 0; n < len; ++n) sum[n] += grad_h[n] * x[n];
      }
      if (p.grad_h) std::copy(grad_h, grad_h + len, static_cast<acc_t*>(p.grad_h) + row);
    }
  }
}

void forward_step_cpu(const RecurrentLIFParams& p, int64_t t, int64_t row_begin,
                      int64_t row_end, at::ScalarType acc) {
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_forward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] { step_forward<scalar_t, R>(p, t, row_begin, row_end); });
  });
}

void backward_step_cpu(const RecurrentLIFParams& p, int64_t t, int64_t row_begin,
                       int64_t row_end, at::ScalarType acc) {
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_backward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] {
        step_backward<scalar_t, R, S>(p, t, row_begin, row_end);
      });
    });
  });
}

constexpr RecurrentKernels kCPUKernels{forward_step_cpu, backward_step_cpu, nullptr, nullptr,
                                       /*rows_on_threads=*/true};

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCPUKernels>));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCPUKernels>));
}

}  // namespace snnfast
