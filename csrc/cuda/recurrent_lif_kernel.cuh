// The kernels of the recurrent LIF op on the GPU and their launch code, built by nvcc for a
// GPU (recurrent_lif_kernel.cu registers them) and by the host compiler for the emulated
// device of the tests (csrc/emulated/).
//
// Where V fits in shared memory (float32 up to N of about 230 on an H100, 200 on an A100)
// a persistent kernel runs the whole sequence in one launch: one block per batch row, one
// thread per neuron, V in shared memory, the spikes (forward) or g_I (backward) of the
// previous step exchanged through a double buffer in shared memory with one barrier per
// step. Above that the glue's time loop runs: one cuBLAS GEMM (at::mm_out on the current
// stream) and one launch of the neuron step kernel per step.
#pragma once

#include <ATen/Dispatch.h>

#include <algorithm>

#include "cuda/device.cuh"
#include "recurrent_lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
// Included by one file of each build (recurrent_lif_kernel.cu,
// csrc/emulated/recurrent_lif_kernel.cpp): the kernels are private to it.
namespace {

constexpr int kStepThreads = 256;

int step_blocks(int64_t neurons) {
  return static_cast<int>(std::min<int64_t>((neurons + kStepThreads - 1) / kStepThreads, 1 << 16));
}

template <typename acc_t>
__device__ __forceinline__ const acc_t* in(const void* ptr) {
  return static_cast<const acc_t*>(ptr);
}

template <typename acc_t>
__device__ __forceinline__ acc_t* out(void* ptr) {
  return static_cast<acc_t*>(ptr);
}

// ---- per-step kernels (any N): the glue computes the recurrent term with cuBLAS ----

// Element m of the rows [row_begin, row_end) of a [B, N] step is in 32 bits where the step
// fits (neuron_of), and t * BN + m is the element of the [T, B, N] traces.
template <typename acc_t, Reset R>
__global__ void forward_step_kernel(const RecurrentLIFParams p, int64_t t, int64_t row_begin,
                                    int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  for (int64_t m = row_begin * N + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       m < row_end * N; m += int64_t(gridDim.x) * blockDim.x) {
    const auto [b, n] = neuron_of(m, BN, N);
    const auto [beta, alpha, threshold, u0] = neuron_values<acc_t>(p, b, n);
    const int64_t i = t * BN + m;
    // u_{t-1}: from the trace, or from the state the inference op keeps in u_last (no
    // membrane, the same for every thread).
    acc_t u_prev;
    if (p.membrane) {
      const acc_t h_prev = t > 0 ? in<acc_t>(p.membrane)[i - BN] : acc_t(0);
      u_prev = previous_state<R>(t == 0, h_prev, u0, threshold, v_reset);
    } else {
      u_prev = t == 0 ? u0 : in<acc_t>(p.u_last)[m];
    }
    const ForwardStep<acc_t> step = forward_step<R>(
        u_prev, in<acc_t>(p.x)[i] + in<acc_t>(p.recurrent)[m], beta, alpha, threshold, v_reset);
    if (p.membrane) out<acc_t>(p.membrane)[i] = step.membrane;
    out<acc_t>(p.spikes)[i] = step.spike;
    if (t == p.T - 1 || !p.membrane) out<acc_t>(p.u_last)[m] = step.state;
  }
}

template <typename acc_t, Reset R, Surrogate S>
__global__ void backward_step_kernel(const RecurrentLIFParams p, int64_t t, int64_t row_begin,
                                     int64_t row_end) {
  const int64_t N = p.N, BN = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t surrogate_param = static_cast<acc_t>(p.surrogate_param);
  for (int64_t m = row_begin * N + blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
       m < row_end * N; m += int64_t(gridDim.x) * blockDim.x) {
    const auto [b, n] = neuron_of(m, BN, N);
    const auto [beta, alpha, threshold, u0] = neuron_values<acc_t>(p, b, n);
    const int64_t i = t * BN + m;
    acc_t* g_u = out<acc_t>(p.grad_u) + m;
    const BackwardStep<acc_t> step = backward_step<R, S>(
        in<acc_t>(p.membrane)[i], in<acc_t>(p.grad_spikes)[i] + in<acc_t>(p.grad_recurrent)[m],
        p.grad_membrane ? in<acc_t>(p.grad_membrane)[i] : acc_t(0), *g_u, beta, alpha, threshold,
        v_reset, surrogate_param, p.detach_reset);
    out<acc_t>(p.grad_x)[i] = step.grad_current;
    if (p.grad_h) out<acc_t>(p.grad_h)[i] = step.grad_h;
    if (p.grad_beta) {
      const acc_t h_prev = t > 0 ? in<acc_t>(p.membrane)[i - BN] : acc_t(0);
      out<acc_t>(p.grad_beta)[m] +=
          step.grad_h * previous_state<R>(t == 0, h_prev, u0, threshold, v_reset);
    }
    if (p.grad_alpha) out<acc_t>(p.grad_alpha)[m] += step.grad_h * in<acc_t>(p.x)[i];
    if (p.grad_threshold) out<acc_t>(p.grad_threshold)[m] += step.grad_threshold;
    *g_u = step.grad_u_prev;
  }
}

void forward_step_cuda(const RecurrentLIFParams& p, int64_t t, int64_t row_begin,
                       int64_t row_end, at::ScalarType acc) {
  const int blocks = step_blocks((row_end - row_begin) * p.N);
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_forward_step_cuda", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      const auto kernel = forward_step_kernel<scalar_t, R>;
      SNNFAST_LAUNCH(kernel, blocks, kStepThreads, 0, Sync::None, p, t, row_begin, row_end);
    });
  });
}

void backward_step_cuda(const RecurrentLIFParams& p, int64_t t, int64_t row_begin,
                        int64_t row_end, at::ScalarType acc) {
  const int blocks = step_blocks((row_end - row_begin) * p.N);
  AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_backward_step_cuda", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] {
        const auto kernel = backward_step_kernel<scalar_t, R, S>;
        SNNFAST_LAUNCH(kernel, blocks, kStepThreads, 0, Sync::None, p, t, row_begin, row_end);
      });
    });
  });
}

// ---- persistent kernels (V in shared memory): block b runs batch row b for all T steps ----

// Shared memory of a persistent kernel: V (N x N) and two rows of N exchanged between steps.
template <typename acc_t>
size_t persistent_smem_bytes(int64_t N) {
  return static_cast<size_t>(N * N + 2 * N) * sizeof(acc_t);
}

int persistent_threads(int64_t N) { return static_cast<int>((N + 31) / 32 * 32); }

template <typename acc_t>
bool fits_persistent(int64_t N) {
  return N <= 1024 &&
         persistent_smem_bytes<acc_t>(N) <= static_cast<size_t>(max_shared_memory_per_block());
}

template <typename acc_t, Reset R>
__global__ void forward_sequence_kernel(const RecurrentLIFParams p) {
  const int N = static_cast<int>(p.N);
  const int64_t BN = p.B * p.N, b = blockIdx.x;
  const int n = threadIdx.x;
  // V_t[j * N + n] = V[n, j]: thread n reads consecutive words for each j (no bank conflict).
  acc_t* V_t = dynamic_shared_memory<acc_t>();
  acc_t* spike_rows = V_t + N * N;  // o_{t-1} in row t % 2, o_t written to the other
  for (int k = threadIdx.x; k < N * N; k += blockDim.x) V_t[(k % N) * N + k / N] = in<acc_t>(p.V)[k];
  for (int k = threadIdx.x; k < 2 * N; k += blockDim.x) spike_rows[k] = acc_t(0);  // o_0 = 0

  const bool active = n < N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const NeuronValues<acc_t> v = active ? neuron_values<acc_t>(p, b, n) : NeuronValues<acc_t>{};
  acc_t u = v.u0;
  __syncthreads();

  for (int64_t t = 0; t < p.T; ++t) {
    const acc_t* spikes_prev = spike_rows + (t & 1) * N;
    if (active) {
      const int64_t i = t * BN + b * N + n;
      // Issued before the sum over the spikes below, which hides its latency.
      const acc_t x_t = in<acc_t>(p.x)[i];
      // o_{t-1} V^T for neuron n: only the neurons that fired contribute. The branch is
      // uniform across the block, as every thread reads the same spike.
      acc_t recurrent = 0;
      for (int j = 0; j < N; ++j)
        if (spikes_prev[j] != acc_t(0)) recurrent += V_t[j * N + n];
      const ForwardStep<acc_t> step =
          forward_step<R>(u, x_t + recurrent, v.beta, v.alpha, v.threshold, v_reset);
      u = step.state;
      if (p.membrane) out<acc_t>(p.membrane)[i] = step.membrane;  // null: inference
      out<acc_t>(p.spikes)[i] = step.spike;
      spike_rows[((t + 1) & 1) * N + n] = step.spike;
    }
    // One barrier per step: the row written here is read in step t + 1, and the row read
    // here is overwritten only in step t + 1, after every thread has passed this barrier.
    __syncthreads();
  }
  if (active) out<acc_t>(p.u_last)[b * N + n] = u;
}

// What step t of the persistent backward kernel reads from global memory, all of it issued
// at once, one step ahead: none of it depends on the recurrence.
template <typename acc_t>
struct SequenceInputs {
  acc_t h_prev;      // h_{t-1}, from which u_{t-1} is recomputed (unused at t = 0)
  acc_t g_spike;     // the gradient of o_t from the outputs
  acc_t g_membrane;  // the gradient of h_t, 0 when none reached the membrane output
  acc_t x;           // x_t, 0 when grad_alpha is not asked for
};

template <typename acc_t, Reset R, Surrogate S>
__global__ void backward_sequence_kernel(const RecurrentLIFParams p) {
  const int N = static_cast<int>(p.N);
  const int64_t BN = p.B * p.N, b = blockIdx.x;
  const int n = threadIdx.x;
  // V as in global memory: thread n reads column n, V[k * N + n], consecutive words.
  acc_t* V = dynamic_shared_memory<acc_t>();
  acc_t* grad_current_rows = V + N * N;  // g_I_t in row t % 2
  for (int k = threadIdx.x; k < N * N; k += blockDim.x) V[k] = in<acc_t>(p.V)[k];

  const bool active = n < N;
  const int64_t state = b * N + n;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t surrogate_param = static_cast<acc_t>(p.surrogate_param);
  const NeuronValues<acc_t> v = active ? neuron_values<acc_t>(p, b, n) : NeuronValues<acc_t>{};
  acc_t g_u = 0, h = 0;
  acc_t g_beta = 0, g_alpha = 0, g_threshold = 0;
  acc_t grad_recurrent = 0;  // nothing reaches o_T through V
  auto load = [&](int64_t t) {
    SequenceInputs<acc_t> next{};
    const int64_t i = t * BN + state;
    if (t >= 1) next.h_prev = in<acc_t>(p.membrane)[i - BN];
    next.g_spike = in<acc_t>(p.grad_spikes)[i];
    if (p.grad_membrane) next.g_membrane = in<acc_t>(p.grad_membrane)[i];
    if (p.x) next.x = in<acc_t>(p.x)[i];
    return next;
  };
  SequenceInputs<acc_t> ahead{};
  if (active) {
    g_u = in<acc_t>(p.grad_u)[state];
    h = in<acc_t>(p.membrane)[(p.T - 1) * BN + state];  // h_t of the step about to run
    ahead = load(p.T - 1);
  }
  __syncthreads();

  for (int64_t t = p.T - 1; t >= 0; --t) {
    acc_t* grad_current_row = grad_current_rows + (t & 1) * N;
    if (active) {
      const int64_t i = t * BN + state;
      const SequenceInputs<acc_t> in_t = ahead;
      if (t >= 1) ahead = load(t - 1);  // in flight during this step and the sum over V
      const BackwardStep<acc_t> step = backward_step<R, S>(
          h, in_t.g_spike + grad_recurrent, in_t.g_membrane, g_u, v.beta, v.alpha, v.threshold,
          v_reset, surrogate_param, p.detach_reset);
      out<acc_t>(p.grad_x)[i] = step.grad_current;
      if (p.grad_h) out<acc_t>(p.grad_h)[i] = step.grad_h;
      g_beta += step.grad_h * previous_state<R>(t == 0, in_t.h_prev, v.u0, v.threshold, v_reset);
      if (p.x) g_alpha += step.grad_h * in_t.x;
      g_threshold += step.grad_threshold;
      g_u = step.grad_u_prev;
      h = in_t.h_prev;
      grad_current_row[n] = step.grad_current;
    }
    __syncthreads();  // as in the forward kernel: one barrier per step, two rows
    if (active && t > 0 && !p.detach_recurrent) {
      // g_o_{t-1} through V: (g_I_t V)[n]; none with detach_recurrent.
      grad_recurrent = 0;
      for (int k = 0; k < N; ++k) grad_recurrent += grad_current_row[k] * V[k * N + n];
    }
  }
  if (active) {
    out<acc_t>(p.grad_u)[state] = g_u;
    if (p.grad_beta) out<acc_t>(p.grad_beta)[state] += g_beta;
    if (p.grad_alpha) out<acc_t>(p.grad_alpha)[state] += g_alpha;
    if (p.grad_threshold) out<acc_t>(p.grad_threshold)[state] += g_threshold;
  }
}

template <typename Kernel>
void launch_persistent(Kernel kernel, const RecurrentLIFParams& p, size_t smem) {
  allow_shared_memory(kernel, smem);
  SNNFAST_LAUNCH(kernel, static_cast<unsigned>(p.B), persistent_threads(p.N), smem, Sync::Block, p);
}

bool forward_sequence_cuda(const RecurrentLIFParams& p, at::ScalarType acc) {
  return AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_forward_sequence_cuda", [&] {
    if (!fits_persistent<scalar_t>(p.N)) return false;
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      launch_persistent(forward_sequence_kernel<scalar_t, R>, p,
                        persistent_smem_bytes<scalar_t>(p.N));
    });
    return true;
  });
}

bool backward_sequence_cuda(const RecurrentLIFParams& p, at::ScalarType acc) {
  return AT_DISPATCH_FLOATING_TYPES(acc, "recurrent_lif_backward_sequence_cuda", [&] {
    if (!fits_persistent<scalar_t>(p.N)) return false;
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] {
        launch_persistent(backward_sequence_kernel<scalar_t, R, S>, p,
                          persistent_smem_bytes<scalar_t>(p.N));
      });
    });
    return true;
  });
}

constexpr RecurrentKernels kCUDAKernels{.forward_step = forward_step_cuda,
                                        .backward_step = backward_step_cuda,
                                        .forward_sequence = forward_sequence_cuda,
                                        .backward_sequence = backward_sequence_cuda,
                                        .rows_on_threads = false};

}  // namespace
}  // namespace snnfast
