// The fused neuron steps of the recurrent LIF op on the CPU. The glue (recurrent_lif.cpp)
// runs the time loop and the GEMMs, one block of batch rows per thread; each step here is
// one pass over the neurons of the block's rows, SIMD across the neurons of a row (a row is
// read from memory once; the loops over its optional outputs run on it in L1).
//
// Every (b, n) neuron belongs to one thread and the steps run in order, so its partial sums
// are accumulated in a fixed order whatever the thread count. For recurrent_lif_events each
// sample has its own list of events (cpu/emit_events.h), which the thread that owns its row
// fills step by step, so the events do not depend on the threads either.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "cpu/emit_events.h"
#include "cpu/neuron_rows.h"
#include "recurrent_lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
namespace {

// Rows are processed in pieces of kRow neurons so that the scratch rows stay on the stack
// and in L1.
template <typename acc_t, Reset R>
void step_forward(const RecurrentLIFParams& p, int64_t t, int64_t row_begin, int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const bool last = t == p.T - 1;
  BlockEvents* sample_events = static_cast<BlockEvents*>(p.step_events);  // [B], or null
  for (int64_t b = row_begin; b < row_end; ++b) {
    if (sample_events != nullptr && t == 0) start_block_events(p, b * N, N, sample_events[b]);
    for (int64_t n0 = 0; n0 < N; n0 += kRow) {
      const int64_t len = std::min(kRow, N - n0);
      const RowParams<acc_t> np(p, b * N + n0, len);
      const int64_t row = t * BN + b * N + n0;
      const acc_t* x = static_cast<const acc_t*>(p.x) + row;
      const acc_t* recurrent = static_cast<const acc_t*>(p.recurrent) + b * N + n0;
      acc_t* membrane = p.membrane ? static_cast<acc_t*>(p.membrane) + row : nullptr;
      acc_t* spikes = static_cast<acc_t*>(p.spikes) + row;
      acc_t* state = static_cast<acc_t*>(p.u_last) + b * N + n0;
      acc_t u_prev[kRow], h[kRow], u[kRow];
      // u_{t-1}: from the trace, or from the state the inference op keeps in u_last.
      if (membrane || t == 0) {
        previous_state_row<R>(len, t > 0 ? membrane - BN : nullptr, np, v_reset, u_prev);
      } else {
        std::copy(state, state + len, u_prev);
      }
#pragma omp simd
      for (int64_t n = 0; n < len; ++n) {
        const ForwardStep<acc_t> step = forward_step<R>(
            u_prev[n], x[n] + recurrent[n], np.beta[n], np.alpha[n], np.threshold[n], v_reset);
        h[n] = step.membrane;
        spikes[n] = step.spike;
        u[n] = step.state;
      }
      if (membrane) std::copy(h, h + len, membrane);
      if (last || !membrane) std::copy(u, u + len, state);
      // The pieces of a row in ascending n0: its indices ascend.
      if (sample_events != nullptr) emit_events(p, b * N + n0, len, t, spikes, sample_events[b]);
    }
  }
}

// RecurrentKernels::forward_emitting: one BlockEvents per sample (a block of one piece, the
// sample's row), started and filled by forward_step, assembled once every step has run.
void forward_emitting_cpu(RecurrentLIFParams& p, c10::function_ref<void()> steps) {
  std::vector<BlockEvents> samples(p.B);
  p.step_events = samples.data();
  steps();
  p.step_events = nullptr;
  assemble(p, samples);
}

// kDetachReset: p.detach_reset as a constant, as in lif_kernel.cpp's backward_row.
template <typename acc_t, Reset R, Surrogate S, bool kDetachReset>
void step_backward(const RecurrentLIFParams& p, int64_t t, int64_t row_begin, int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t surrogate_param = static_cast<acc_t>(p.surrogate_param);
  // A stand-in for a missing gradient of the membrane, so that the inner loop has no branch.
  const acc_t zeros[kRow] = {};
  for (int64_t b = row_begin; b < row_end; ++b) {
    for (int64_t n0 = 0; n0 < N; n0 += kRow) {
      const int64_t len = std::min(kRow, N - n0);
      const RowParams<acc_t> np(p, b * N + n0, len);
      const int64_t row = t * BN + b * N + n0, state = b * N + n0;
      const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
      const acc_t* grad_spikes = static_cast<const acc_t*>(p.grad_spikes) + row;
      const acc_t* grad_recurrent = static_cast<const acc_t*>(p.grad_recurrent) + state;
      const acc_t* grad_membrane =
          p.grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : zeros;
      acc_t* grad_x = static_cast<acc_t*>(p.grad_x) + row;
      acc_t* g_u = static_cast<acc_t*>(p.grad_u) + state;
      // g_h_t and this step's share of g_threshold, kept on the stack for the optional outputs.
      acc_t grad_h[kRow], g_threshold[kRow];
#pragma omp simd
      for (int64_t n = 0; n < len; ++n) {
        const BackwardStep<acc_t> step = backward_step<R, S>(
            membrane[n], grad_spikes[n] + grad_recurrent[n], grad_membrane[n], g_u[n],
            np.beta[n], np.alpha[n], np.threshold[n], v_reset, surrogate_param, kDetachReset);
        grad_h[n] = step.grad_h;
        grad_x[n] = step.grad_current;
        g_threshold[n] = step.grad_threshold;
        g_u[n] = step.grad_u_prev;
      }
      if (p.grad_threshold) {
        acc_t* sum = static_cast<acc_t*>(p.grad_threshold) + state;
#pragma omp simd
        for (int64_t n = 0; n < len; ++n) sum[n] += g_threshold[n];
      }
      if (p.grad_beta) {
        acc_t u_prev[kRow];
        previous_state_row<R>(len, t > 0 ? membrane - BN : nullptr, np, v_reset, u_prev);
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
        SNNFAST_BOOL_SWITCH(p.detach_reset, kDetachReset, [&] {
          step_backward<scalar_t, R, S, kDetachReset>(p, t, row_begin, row_end);
        });
      });
    });
  });
}

constexpr RecurrentKernels kCPUKernels{.forward_step = forward_step_cpu,
                                       .backward_step = backward_step_cpu,
                                       .forward_sequence = nullptr,
                                       .backward_sequence = nullptr,
                                       .rows_on_threads = true,
                                       .forward_emitting = forward_emitting_cpu};

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("recurrent_lif_inference", TORCH_FN(recurrent_lif_inference_with<&kCPUKernels>));
  m.impl("recurrent_lif", TORCH_FN(recurrent_lif_forward_with<&kCPUKernels>));
  m.impl("recurrent_lif_events", TORCH_FN(recurrent_lif_events_with<&kCPUKernels>));
  m.impl("recurrent_lif_backward", TORCH_FN(recurrent_lif_backward_with<&kCPUKernels>));
}

}  // namespace snnfast
