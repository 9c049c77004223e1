// The fused LIF op on the CPU: threads over blocks of neighbouring neurons, time sequential
// inside each block, SIMD across the neurons of a block. One pass forward, one pass back.
//
// Every (b, n) neuron is owned by one thread for the whole sequence, so its state and its
// parameter-gradient partial sums are computed in a fixed order whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>

#include "lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
namespace {

// Neurons per block: a block's state, parameters and partial sums stay in L1, and each time
// step reads and writes rows of 1 KiB, long enough for the hardware prefetcher.
constexpr int64_t kBlock = 256;

template <typename acc_t>
struct BlockParams {
  acc_t beta[kBlock], alpha[kBlock], threshold[kBlock], u0[kBlock];

  BlockParams(const LIFParams& p, int64_t m0, int64_t len) {
    const auto* beta_ = static_cast<const acc_t*>(p.beta);
    const auto* alpha_ = static_cast<const acc_t*>(p.alpha);
    const auto* threshold_ = static_cast<const acc_t*>(p.threshold);
    const auto* u0_ = static_cast<const acc_t*>(p.u0);
    for (int64_t j = 0; j < len; ++j) {
      const int64_t b = (m0 + j) / p.N, n = (m0 + j) % p.N;
      beta[j] = beta_[n];
      alpha[j] = alpha_[n];
      threshold[j] = threshold_[n];
      u0[j] = u0_[b * p.u0_batch_stride + n];
    }
  }
};

// Runs body(m0, len) over the blocks of B * N neurons, in parallel when there is enough work.
template <typename Body>
void for_each_block(const LIFParams& p, const Body& body) {
  const int64_t M = p.B * p.N;
  const int64_t blocks = (M + kBlock - 1) / kBlock;
  const int64_t work_per_block = kBlock * std::max<int64_t>(p.T, 1);
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / work_per_block);
  at::parallel_for(0, blocks, grain, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      const int64_t m0 = block * kBlock;
      body(m0, std::min(kBlock, M - m0));
    }
  });
}

template <typename scalar_t, Reset R>
void forward(const LIFParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  for_each_block(p, [&](int64_t m0, int64_t len) {
    const BlockParams<acc_t> np(p, m0, len);
    acc_t u[kBlock];
    std::copy(np.u0, np.u0 + len, u);
    for (int64_t t = 0; t < p.T; ++t) {
      const int64_t row = t * M + m0;
      const scalar_t* x = static_cast<const scalar_t*>(p.x) + row;
      scalar_t* spikes = static_cast<scalar_t*>(p.spikes) + row;
      acc_t* membrane = static_cast<acc_t*>(p.membrane) + row;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const acc_t h = charge(u[j], static_cast<acc_t>(x[j]), np.beta[j], np.alpha[j]);
        const acc_t spike = fire(h, np.threshold[j]);
        u[j] = reset_membrane<R>(h, spike, np.threshold[j], v_reset);
        membrane[j] = h;
        spikes[j] = static_cast<scalar_t>(spike);
      }
    }
    std::copy(u, u + len, static_cast<acc_t*>(p.u_last) + m0);
  });
}

template <typename scalar_t, Reset R, Surrogate S>
void backward(const LIFParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t param = static_cast<acc_t>(p.surrogate_param);
  const bool detach_reset = p.detach_reset;
  for_each_block(p, [&](int64_t m0, int64_t len) {
    const BlockParams<acc_t> np(p, m0, len);
    acc_t g_u[kBlock], u_prev[kBlock];
    acc_t g_beta[kBlock] = {}, g_alpha[kBlock] = {}, g_threshold[kBlock] = {};
    if (p.grad_u_last != nullptr) {
      std::copy_n(static_cast<const acc_t*>(p.grad_u_last) + m0, len, g_u);
    } else {
      std::fill_n(g_u, len, acc_t(0));
    }
    for (int64_t t = p.T - 1; t >= 0; --t) {
      const int64_t row = t * M + m0;
      const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
      if (t > 0) {
        const acc_t* membrane_prev = membrane - M;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j)
          u_prev[j] = state_after<R>(membrane_prev[j], np.threshold[j], v_reset);
      } else {
        std::copy(np.u0, np.u0 + len, u_prev);
      }
      const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes) + row;
      const acc_t* grad_membrane =
          p.grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : nullptr;
      const scalar_t* x = p.x ? static_cast<const scalar_t*>(p.x) + row : nullptr;
      scalar_t* grad_x = p.grad_x ? static_cast<scalar_t*>(p.grad_x) + row : nullptr;
#pragma omp simd
      for (int64_t j = 0; j < len; ++j) {
        const StepGrad<acc_t> g = backward_step<R, S>(
            membrane[j], static_cast<acc_t>(grad_spikes[j]),
            grad_membrane ? grad_membrane[j] : acc_t(0), g_u[j], np.threshold[j], v_reset,
            param, detach_reset);
        if (grad_x) grad_x[j] = static_cast<scalar_t>(np.alpha[j] * g.h);
        g_beta[j] += g.h * u_prev[j];
        if (x) g_alpha[j] += g.h * static_cast<acc_t>(x[j]);
        g_threshold[j] += g.threshold;
        g_u[j] = np.beta[j] * g.h;
      }
    }
    auto store = [&](void* dst, const acc_t* src) {
      if (dst) std::copy(src, src + len, static_cast<acc_t*>(dst) + m0);
    };
    store(p.grad_beta, g_beta);
    store(p.grad_alpha, g_alpha);
    store(p.grad_threshold, g_threshold);
    store(p.grad_u0, g_u);
  });
}

void lif_forward_cpu(const LIFParams& p, at::ScalarType dtype) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lif_forward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] { forward<scalar_t, R>(p); });
  });
}

void lif_backward_cpu(const LIFParams& p, at::ScalarType dtype) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "lif_backward_cpu", [&] {
    SNNFAST_RESET_SWITCH(p.reset, R, [&] {
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] { backward<scalar_t, R, S>(p); });
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("lif", TORCH_FN(lif_forward_with<lif_forward_cpu>));
  m.impl("lif_backward", TORCH_FN(lif_backward_with<lif_backward_cpu>));
}

}  // namespace snnfast
