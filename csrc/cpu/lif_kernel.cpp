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
#include <vector>

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

// One time step of one block. The rows are separate __restrict arguments of a function of
// their own: written inline in the loops over time, GCC leaves most variants scalar.
template <typename scalar_t, typename acc_t, Reset R>
void forward_row(int64_t len, const scalar_t* __restrict x, scalar_t* __restrict spikes,
                 acc_t* __restrict membrane, acc_t* __restrict u, const acc_t* __restrict beta,
                 const acc_t* __restrict alpha, const acc_t* __restrict threshold,
                 acc_t v_reset) {
#pragma GCC ivdep
  for (int64_t j = 0; j < len; ++j) {
    const acc_t h = charge(u[j], static_cast<acc_t>(x[j]), beta[j], alpha[j]);
    const acc_t spike = fire(h, threshold[j]);
    u[j] = reset_membrane<R>(h, spike, threshold[j], v_reset);
    membrane[j] = h;
    spikes[j] = static_cast<scalar_t>(spike);
  }
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
      forward_row<scalar_t, acc_t, R>(len, static_cast<const scalar_t*>(p.x) + row,
                                      static_cast<scalar_t*>(p.spikes) + row,
                                      static_cast<acc_t*>(p.membrane) + row, u, np.beta,
                                      np.alpha, np.threshold, v_reset);
    }
    std::copy(u, u + len, static_cast<acc_t*>(p.u_last) + m0);
  });
}

template <typename acc_t, Reset R>
void state_row(int64_t len, const acc_t* __restrict membrane_prev, acc_t* __restrict u_prev,
               const acc_t* __restrict threshold, acc_t v_reset) {
#pragma GCC ivdep
  for (int64_t j = 0; j < len; ++j) u_prev[j] = state_after<R>(membrane_prev[j], threshold[j], v_reset);
}

// Gradient accumulators of one block: g_u is carried from step to step, the rest are the
// partial sums over time of the parameter gradients.
template <typename acc_t>
struct BlockGrads {
  acc_t g_u[kBlock], g_beta[kBlock], g_alpha[kBlock], g_threshold[kBlock];
};

template <typename scalar_t, typename acc_t, Reset R, Surrogate S>
void backward_row(int64_t len, const acc_t* __restrict membrane,
                  const acc_t* __restrict u_prev, const scalar_t* __restrict grad_spikes,
                  const acc_t* __restrict grad_membrane, const scalar_t* __restrict x,
                  scalar_t* __restrict grad_x, const BlockParams<acc_t>& np,
                  BlockGrads<acc_t>& g, acc_t v_reset, acc_t param, acc_t reset_path) {
  acc_t* __restrict g_u = g.g_u;
  acc_t* __restrict g_beta = g.g_beta;
  acc_t* __restrict g_alpha = g.g_alpha;
  acc_t* __restrict g_threshold = g.g_threshold;
  const acc_t* __restrict beta = np.beta;
  const acc_t* __restrict alpha = np.alpha;
  const acc_t* __restrict threshold = np.threshold;
#pragma GCC ivdep
  for (int64_t j = 0; j < len; ++j) {
    const acc_t h = membrane[j];
    const acc_t s = surrogate_grad<S>(h - threshold[j], param);
    const acc_t s_reset = s * reset_path;
    const acc_t g_spike = static_cast<acc_t>(grad_spikes[j]);
    const acc_t g_h =
        grad_h<R>(h, threshold[j], v_reset, s, s_reset, g_spike, grad_membrane[j], g_u[j]);
    g_threshold[j] += grad_threshold<R>(h, threshold[j], v_reset, s, s_reset, g_spike, g_u[j]);
    grad_x[j] = static_cast<scalar_t>(alpha[j] * g_h);
    g_beta[j] += g_h * u_prev[j];
    g_alpha[j] += g_h * static_cast<acc_t>(x[j]);
    g_u[j] = beta[j] * g_h;
  }
}

template <typename scalar_t, Reset R, Surrogate S>
void backward(const LIFParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t param = static_cast<acc_t>(p.surrogate_param);
  for_each_block(p, [&](int64_t m0, int64_t len) {
    const BlockParams<acc_t> np(p, m0, len);
    BlockGrads<acc_t> g = {};
    acc_t u_prev[kBlock];
    // Stand-ins for the optional rows, so that the inner loop has no branch: zeros for a
    // missing gradient or input, scratch for a gradient nobody asked for.
    const std::vector<acc_t> zeros_acc(kBlock, acc_t(0));
    const std::vector<scalar_t> zeros_scalar(kBlock, scalar_t(0));
    std::vector<scalar_t> scratch(kBlock);
    if (p.grad_u_last != nullptr)
      std::copy_n(static_cast<const acc_t*>(p.grad_u_last) + m0, len, g.g_u);
    for (int64_t t = p.T - 1; t >= 0; --t) {
      const int64_t row = t * M + m0;
      const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
      if (t > 0) {
        state_row<acc_t, R>(len, membrane - M, u_prev, np.threshold, v_reset);
      } else {
        std::copy(np.u0, np.u0 + len, u_prev);
      }
      backward_row<scalar_t, acc_t, R, S>(
          len, membrane, u_prev, static_cast<const scalar_t*>(p.grad_spikes) + row,
          p.grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : zeros_acc.data(),
          p.x ? static_cast<const scalar_t*>(p.x) + row : zeros_scalar.data(),
          p.grad_x ? static_cast<scalar_t*>(p.grad_x) + row : scratch.data(), np, g, v_reset,
          param, reset_path<acc_t>(p.detach_reset));
    }
    auto store = [&](void* dst, const acc_t* src) {
      if (dst) std::copy(src, src + len, static_cast<acc_t*>(dst) + m0);
    };
    store(p.grad_beta, g.g_beta);
    store(p.grad_alpha, g.g_alpha);
    store(p.grad_threshold, g.g_threshold);
    store(p.grad_u0, g.g_u);
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
