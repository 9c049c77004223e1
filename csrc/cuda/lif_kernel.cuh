// The kernels of the fused LIF op on CUDA and their launch code, built by nvcc for a GPU
// (lif_kernel.cu registers them) and by the host compiler for the emulated device of the
// tests (csrc/emulated/). One thread per neuron (b, n), time sequential inside the thread.
// Neighbouring threads own neighbouring neurons, so every load and store of a time step is
// one coalesced row access per warp. One launch forward, one launch backward.
//
// Every neuron is owned by one thread for the whole sequence, so its state and its
// parameter-gradient partial sums are computed in a fixed order whatever the launch shape:
// two runs give the same bits, and the glue reduces the [B, N] partials with at::sum.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <limits>

#include "cuda/device.cuh"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"
#include "snnfast/neuron.h"

namespace snnfast {
// Included by one file of each build (lif_kernel.cu, csrc/emulated/lif_kernel.cpp): the
// kernels are private to it.
namespace {

constexpr int kMaxThreads = 128;

// How many time steps ahead a thread loads its inputs. The loads do not depend on the
// recurrence, only the arithmetic does, so each thread keeps K steps of loads in flight: it
// issues the load of step t + K (t - K going back) as it computes step t, into a ring of K
// registers. That hides the memory latency when there are few neurons and many steps (the
// SHD regime: 6,400 neurons, T in the thousands, a few warps per SM); with many neurons,
// occupancy hides it anyway. The backward pass reads up to four inputs per step, so it looks
// fewer steps ahead; doubles take two registers each.
template <typename acc_t>
constexpr int kForwardSteps = sizeof(acc_t) == 8 ? 16 : 32;
template <typename acc_t>
constexpr int kBackwardSteps = sizeof(acc_t) == 8 ? 8 : 16;

// Element (t, b, n) of a [T, B, N] buffer is at t * M + m, m = b * N + n, M = B * N. The
// kernels step an index by M from one step to the next, through opaque() (device.cuh): it
// hides the step from the optimiser, which would otherwise recompute t * M + m with 64-bit
// multiplies for every unrolled step, or keep K such offsets live in registers.

template <typename scalar_t, Reset R>
__global__ void __launch_bounds__(kMaxThreads) forward_kernel(const LIFParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int K = kForwardSteps<acc_t>;
  const int64_t T = p.T, M = p.B * p.N;
  const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= M) return;
  const auto [b, n] = neuron_of(m, M, p.N);

  const auto [beta, alpha, threshold, u0] = neuron_values<acc_t>(p, b, n);
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  acc_t u = u0;

  const scalar_t* x = static_cast<const scalar_t*>(p.x);
  scalar_t* spikes = static_cast<scalar_t*>(p.spikes);
  acc_t* membrane = static_cast<acc_t*>(p.membrane);

  // x_ahead[k] holds x of the step t with t % K == k, loaded K steps before it is used.
  acc_t x_ahead[K];
  int64_t i_ahead = m;  // the index of the next step to load
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (k >= T) break;  // the slots of steps that do not exist are never read
    x_ahead[k] = static_cast<acc_t>(x[i_ahead]);
    i_ahead = opaque(i_ahead + M);
  }
  int64_t i = m;  // the index of step t
  // Runs the K steps from t0. kCheck: whether a step or a load ahead may be out of range,
  // which only the last two blocks need to check.
  auto run_block = [&]<bool kCheck>(int64_t t0) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t t = t0 + k;
      if (kCheck && t >= T) break;
      const acc_t x_t = x_ahead[k];
      x_ahead[k] = !kCheck || t + K < T ? static_cast<acc_t>(x[i_ahead]) : acc_t(0);
      i_ahead = opaque(i_ahead + M);
      const ForwardStep<acc_t> step = forward_step<R>(u, x_t, beta, alpha, threshold, v_reset);
      u = step.state;
      if (membrane) membrane[i] = step.membrane;  // null in the inference op, for every thread
      spikes[i] = static_cast<scalar_t>(step.spike);
      i = opaque(i + M);
    }
  };
  for (int64_t t0 = 0; t0 < T; t0 += K)
    SNNFAST_BOOL_SWITCH(t0 + 2 * K > T, kCheck, [&] { run_block.template operator()<kCheck>(t0); });
  static_cast<acc_t*>(p.u_last)[m] = u;
}

// What step t of the backward pass reads.
template <typename acc_t>
struct BackwardInputs {
  acc_t h_prev;      // h_{t-1}, from which the state u_{t-1} is recomputed (unused at t = 0)
  acc_t g_spike;     // the gradient of o_t
  acc_t g_membrane;  // the gradient of h_t, 0 when none reached the membrane output
  acc_t x;           // x_t, 0 when grad_alpha is not asked for
};

template <typename scalar_t, Reset R, Surrogate S>
__global__ void __launch_bounds__(kMaxThreads) backward_kernel(const LIFParams p) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr int K = kBackwardSteps<acc_t>;
  const int64_t T = p.T, M = p.B * p.N;
  const int64_t m = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (m >= M) return;
  const auto [b, n] = neuron_of(m, M, p.N);

  const auto [beta, alpha, threshold, u0] = neuron_values<acc_t>(p, b, n);
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t surrogate_param = static_cast<acc_t>(p.surrogate_param);
  const bool detach_reset = p.detach_reset;

  // The optional buffers are null when absent, for every thread alike: no divergence.
  const acc_t* membrane = static_cast<const acc_t*>(p.membrane);
  const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes);
  const acc_t* grad_membrane = static_cast<const acc_t*>(p.grad_membrane);
  const scalar_t* x = static_cast<const scalar_t*>(p.x);
  scalar_t* grad_x = static_cast<scalar_t*>(p.grad_x);

  // The inputs of step t, at index = t * M + m; zeros for t < 0. Without kCheck the step is
  // known to be in range (t >= 1) and the checks are skipped.
  auto load = [&]<bool kCheck>(int64_t t, int64_t index) {
    BackwardInputs<acc_t> in{};
    if (kCheck && t < 0) return in;
    in.h_prev = !kCheck || t >= 1 ? membrane[index - M] : acc_t(0);
    in.g_spike = static_cast<acc_t>(grad_spikes[index]);
    if (grad_membrane) in.g_membrane = grad_membrane[index];
    if (x) in.x = static_cast<acc_t>(x[index]);
    return in;
  };

  // Steps run from T - 1 down to 0. ahead[k] holds the inputs of the step t with
  // (T - 1 - t) % K == k, loaded K steps before they are used.
  BackwardInputs<acc_t> ahead[K];
  int64_t i_ahead = (T - 1) * M + m;  // the index of the next step to load
#pragma unroll
  for (int k = 0; k < K; ++k) {
    if (k >= T) break;  // the slots of steps that do not exist are never read
    ahead[k] = load.template operator()<true>(T - 1 - k, i_ahead);
    i_ahead = opaque(i_ahead - M);
  }

  acc_t g_u = p.grad_u_last ? static_cast<const acc_t*>(p.grad_u_last)[m] : acc_t(0);
  acc_t g_beta = 0, g_alpha = 0, g_threshold = 0;
  // h holds h_t of the step about to run; each step hands its h_{t-1} down, so every
  // element of the membrane trace is read once.
  acc_t h = T > 0 ? membrane[(T - 1) * M + m] : acc_t(0);
  int64_t i = (T - 1) * M + m;  // the index of step t
  // Runs the K steps from t_hi down; kCheck as in the forward kernel.
  auto run_block = [&]<bool kCheck>(int64_t t_hi) {
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const int64_t t = t_hi - k;
      if (kCheck && t < 0) break;
      const BackwardInputs<acc_t> in = ahead[k];
      ahead[k] = load.template operator()<kCheck>(t - K, i_ahead);
      i_ahead = opaque(i_ahead - M);
      const BackwardStep<acc_t> step = backward_step<R, S>(
          h, in.g_spike, in.g_membrane, g_u, beta, alpha, threshold, v_reset, surrogate_param,
          detach_reset);
      if (grad_x) grad_x[i] = static_cast<scalar_t>(step.grad_current);
      g_beta += step.grad_h * previous_state<R>(kCheck && t < 1, in.h_prev, u0, threshold, v_reset);
      if (x) g_alpha += step.grad_h * in.x;
      g_threshold += step.grad_threshold;
      g_u = step.grad_u_prev;
      h = in.h_prev;
      i = opaque(i - M);
    }
  };
  for (int64_t t_hi = T - 1; t_hi >= 0; t_hi -= K)
    SNNFAST_BOOL_SWITCH(t_hi < 2 * K, kCheck, [&] { run_block.template operator()<kCheck>(t_hi); });
  if (p.grad_beta) static_cast<acc_t*>(p.grad_beta)[m] = g_beta;
  if (p.grad_alpha) static_cast<acc_t*>(p.grad_alpha)[m] = g_alpha;
  if (p.grad_threshold) static_cast<acc_t*>(p.grad_threshold)[m] = g_threshold;
  if (p.grad_u0) static_cast<acc_t*>(p.grad_u0)[m] = g_u;
}

struct LaunchShape {
  unsigned int blocks;
  unsigned int threads;
};

// kMaxThreads per block when there are many neurons; fewer when there are few, so that the
// blocks spread over every SM instead of crowding a few of them.
LaunchShape launch_shape(int64_t neurons) {
  const int64_t enough_blocks = 2 * multiprocessor_count();
  int64_t threads = kMaxThreads;
  while (threads > 32 && (neurons + threads - 1) / threads < enough_blocks) threads /= 2;
  const int64_t blocks = (neurons + threads - 1) / threads;
  TORCH_CHECK(blocks <= std::numeric_limits<int32_t>::max(), "snnfast.lif: ", neurons,
              " neurons (B x N) are too many for one CUDA launch");
  return {static_cast<unsigned int>(blocks), static_cast<unsigned int>(threads)};
}

// The glue holds a device guard for x's device, so the current device and stream are x's.
void lif_forward_cuda(const LIFParams& p, at::ScalarType dtype) {
  const LaunchShape shape = launch_shape(p.B * p.N);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lif_forward_cuda", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      const auto kernel = forward_kernel<scalar_t, R>;
      SNNFAST_LAUNCH(kernel, shape.blocks, shape.threads, 0, Sync::None, p);
    });
  });
}

void lif_backward_cuda(const LIFParams& p, at::ScalarType dtype) {
  const LaunchShape shape = launch_shape(p.B * p.N);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lif_backward_cuda", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] {
        const auto kernel = backward_kernel<scalar_t, R, S>;
        SNNFAST_LAUNCH(kernel, shape.blocks, shape.threads, 0, Sync::None, p);
      });
    });
  });
}

}  // namespace
}  // namespace snnfast
