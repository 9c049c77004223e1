// The fused LIF op on the CPU: threads over blocks of kRow neighbouring neurons
// (cpu/neuron_rows.h), time sequential inside each block, SIMD across the neurons of a
// block. One pass forward, one pass back.
//
// Every (b, n) neuron is owned by one thread for the whole sequence, so its state and its
// parameter-gradient partial sums are computed in a fixed order whatever the thread count.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "cpu/emit_events.h"
#include "cpu/event_rows.h"
#include "cpu/neuron_rows.h"
#include "event_linear.h"
#include "lif.h"
#include "snnfast/dispatch.h"
#include "snnfast/lif_step.h"

namespace snnfast {
namespace {

// How many steps ahead the rows of a block are requested. Consecutive steps of a block are a
// whole [B, N] row apart: the hardware prefetcher does not follow that stride, least of all
// backwards in time, and without this the kernels wait on memory.
constexpr int64_t kPrefetchSteps = 2;

template <int kWrite, typename T>
inline void prefetch_row(const T* row, int64_t len) {
  const char* bytes = reinterpret_cast<const char*>(row);
  for (int64_t offset = 0; offset < len * static_cast<int64_t>(sizeof(T)); offset += 64)
    __builtin_prefetch(bytes + offset, kWrite, 3);
}

// Outputs larger than this go around the caches (below): they would not stay there anyway.
constexpr int64_t kStreamingBytes = int64_t(16) << 20;

// Copies a finished row of a block from L1 to its tensor, for a large output with
// non-temporal stores: the row is not read again soon, and an ordinary store would first
// read every cache line it writes, a third more memory traffic in a kernel that does little
// else. A small output stays in the cache, where non-temporal stores would only evict it.
template <typename T>
inline void stream_row(T* dst, const T* src, int64_t len, bool streaming) {
#if defined(__AVX__)
  if constexpr (sizeof(T) == 4 || sizeof(T) == 8) {
    if (!streaming) {
      std::memcpy(dst, src, len * sizeof(T));
      return;
    }
    constexpr int64_t kLanes = 32 / sizeof(T);
    int64_t j = 0;
    for (; j < len && reinterpret_cast<uintptr_t>(dst + j) % 32 != 0; ++j) dst[j] = src[j];
    for (; j + kLanes <= len; j += kLanes) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + j));
      _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + j), v);
    }
    for (; j < len; ++j) dst[j] = src[j];
    return;
  }
#endif
  std::memcpy(dst, src, len * sizeof(T));
}

// Makes the non-temporal stores of this thread visible before the kernel returns.
inline void stream_fence() {
#if defined(__AVX__)
  _mm_sfence();
#endif
}

// Runs body(m0, len) over the blocks of B * N neurons, in parallel when there is enough work.
template <typename Body>
void for_each_block(const LIFParams& p, const Body& body) {
  const int64_t M = p.B * p.N;
  const int64_t blocks = (M + kRow - 1) / kRow;
  const int64_t work_per_block = kRow * std::max<int64_t>(p.T, 1);
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / work_per_block);
  at::parallel_for(0, blocks, grain, [&](int64_t first, int64_t last) {
    for (int64_t block = first; block < last; ++block) {
      const int64_t m0 = block * kRow;
      body(m0, std::min(kRow, M - m0));
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
    const ForwardStep<acc_t> step =
        forward_step<R>(u[j], static_cast<acc_t>(x[j]), beta[j], alpha[j], threshold[j], v_reset);
    u[j] = step.state;
    membrane[j] = step.membrane;
    spikes[j] = static_cast<scalar_t>(step.spike);
  }
}

// The input current of step t of a block from events (LIFParams::current_offsets): for
// each piece of the block (its part of one sample b), event_linear's sum of the row t * B + b
// over the piece's neurons. float32 and float64 only, the event kernels' dtypes: the glue
// checks the weight's (event_linear_lif), so no other dtype comes with events.
template <typename scalar_t>
void event_current(const LIFParams& p, int64_t m0, int64_t len, int64_t t, scalar_t* current) {
  if constexpr (std::is_same_v<scalar_t, float> || std::is_same_v<scalar_t, double>) {
    const scalar_t* w = static_cast<const scalar_t*>(p.weight_t);
    const scalar_t* bias = static_cast<const scalar_t*>(p.bias);
    for (int64_t j = 0; j < len;) {
      const int64_t b = (m0 + j) / p.N, n = (m0 + j) % p.N, run = std::min(len - j, p.N - n);
      const int64_t r = t * p.B + b;
      event_row(w + n, p.N, bias != nullptr ? bias + n : nullptr, p.current_indices, p.current_offsets[r],
                p.current_offsets[r + 1], current + j, run);
      j += run;
    }
  }
}

template <typename scalar_t, Reset R>
void forward(const LIFParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  // Where the kernel emits events, the next layer reads those, not the dense outputs: they go
  // around the cache whatever their size.
  const bool streaming = p.events != nullptr || p.T * M * static_cast<int64_t>(sizeof(acc_t)) > kStreamingBytes;
  std::vector<BlockEvents> events(p.events != nullptr ? (M + kRow - 1) / kRow : 0);
  for_each_block(p, [&](int64_t m0, int64_t len) {
    const RowParams<acc_t> np(p, m0, len);
    acc_t u[kRow], membrane[kRow];
    scalar_t spikes[kRow];
    std::copy(np.u0, np.u0 + len, u);
    BlockEvents* e = p.events != nullptr ? &events[m0 / kRow] : nullptr;
    if (e != nullptr) start_block_events(p, m0, len, *e);
    scalar_t current[kRow];  // a step's input current, where it comes as events
    for (int64_t t = 0; t < p.T; ++t) {
      const int64_t row = t * M + m0;
      const scalar_t* x = current;
      if (p.current_offsets != nullptr) {
        event_current(p, m0, len, t, current);
      } else {
        x = static_cast<const scalar_t*>(p.x) + row;
        if (t + kPrefetchSteps < p.T) prefetch_row<0>(x + kPrefetchSteps * M, len);
      }
      forward_row<scalar_t, acc_t, R>(len, x, spikes, membrane, u, np.beta, np.alpha, np.threshold, v_reset);
      stream_row(static_cast<scalar_t*>(p.spikes) + row, spikes, len, streaming);
      if (p.membrane) stream_row(static_cast<acc_t*>(p.membrane) + row, membrane, len, streaming);
      if (e != nullptr) emit_events(p, m0, len, t, spikes, *e);
    }
    std::copy(u, u + len, static_cast<acc_t*>(p.u_last) + m0);
    stream_fence();
  });
  if (p.events != nullptr) assemble(p, events);
}

// Gradient accumulators of one block: g_u is carried from step to step, the rest are the
// partial sums over time of the parameter gradients.
template <typename acc_t>
struct BlockGrads {
  acc_t g_u[kRow], g_beta[kRow], g_alpha[kRow], g_threshold[kRow];
};

// kParamGrads: whether to accumulate the parameter gradients; three loads and stores per
// neuron and step that most calls (fixed beta, alpha and threshold) do not need.
// kDetachReset is p.detach_reset as a constant: GCC leaves the sigmoid surrogate's loop
// scalar when the reset's terms are selected by a runtime flag (5x slower, AVX2).
// grad_membrane and x are rows of zeros where the op has none (see backward).
template <typename scalar_t, typename acc_t, Reset R, Surrogate S, bool kDetachReset,
          bool kParamGrads>
void backward_row(int64_t len, const acc_t* __restrict membrane,
                  const acc_t* __restrict u_prev, const scalar_t* __restrict grad_spikes,
                  const acc_t* __restrict grad_membrane, const scalar_t* __restrict x,
                  scalar_t* __restrict grad_x, const RowParams<acc_t>& np,
                  BlockGrads<acc_t>& g, acc_t v_reset, acc_t surrogate_param) {
  acc_t* __restrict g_u = g.g_u;
  acc_t* __restrict g_beta = g.g_beta;
  acc_t* __restrict g_alpha = g.g_alpha;
  acc_t* __restrict g_threshold = g.g_threshold;
  const acc_t* __restrict beta = np.beta;
  const acc_t* __restrict alpha = np.alpha;
  const acc_t* __restrict threshold = np.threshold;
#pragma GCC ivdep
  for (int64_t j = 0; j < len; ++j) {
    const BackwardStep<acc_t> step = backward_step<R, S>(
        membrane[j], static_cast<acc_t>(grad_spikes[j]), grad_membrane[j], g_u[j], beta[j],
        alpha[j], threshold[j], v_reset, surrogate_param, kDetachReset);
    if constexpr (kParamGrads) {
      g_threshold[j] += step.grad_threshold;
      g_beta[j] += step.grad_h * u_prev[j];
      g_alpha[j] += step.grad_h * static_cast<acc_t>(x[j]);
    }
    grad_x[j] = static_cast<scalar_t>(step.grad_current);
    g_u[j] = step.grad_u_prev;
  }
}

template <typename scalar_t, Reset R, Surrogate S, bool kDetachReset>
void backward(const LIFParams& p) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t M = p.B * p.N;
  const acc_t v_reset = static_cast<acc_t>(p.v_reset);
  const acc_t surrogate_param = static_cast<acc_t>(p.surrogate_param);
  const bool param_grads = p.grad_beta || p.grad_alpha || p.grad_threshold;
  const bool streaming = p.T * M * static_cast<int64_t>(sizeof(scalar_t)) > kStreamingBytes;
  for_each_block(p, [&](int64_t m0, int64_t len) {
    const RowParams<acc_t> np(p, m0, len);
    BlockGrads<acc_t> g = {};
    acc_t u_prev[kRow];
    // Stand-ins for the optional rows, so that the inner loop has no branch: zeros for a
    // missing gradient or input. grad_x is computed into a row of its own, then streamed out.
    // On the stack: three heap allocations per block were a fixed cost of short sequences.
    acc_t zeros_acc[kRow] = {};
    scalar_t zeros_scalar[kRow] = {};
    scalar_t grad_x[kRow];
    if (p.grad_u_last != nullptr)
      std::copy_n(static_cast<const acc_t*>(p.grad_u_last) + m0, len, g.g_u);
    for (int64_t t = p.T - 1; t >= 0; --t) {
      const int64_t row = t * M + m0;
      const acc_t* membrane = static_cast<const acc_t*>(p.membrane) + row;
      if (t - kPrefetchSteps > 0) {
        const int64_t ahead = row - kPrefetchSteps * M;
        prefetch_row<0>(static_cast<const acc_t*>(p.membrane) + ahead - M, len);  // u_{t-1}
        prefetch_row<0>(static_cast<const scalar_t*>(p.grad_spikes) + ahead, len);
        if (p.grad_membrane) prefetch_row<0>(static_cast<const acc_t*>(p.grad_membrane) + ahead, len);
        if (p.x) prefetch_row<0>(static_cast<const scalar_t*>(p.x) + ahead, len);
      }
      // u_{t-1} enters only the gradient of beta.
      if (param_grads)
        previous_state_row<R>(len, t > 0 ? membrane - M : nullptr, np, v_reset, u_prev);
      const acc_t* grad_membrane =
          p.grad_membrane ? static_cast<const acc_t*>(p.grad_membrane) + row : zeros_acc;
      const scalar_t* x = p.x ? static_cast<const scalar_t*>(p.x) + row : zeros_scalar;
      const scalar_t* grad_spikes = static_cast<const scalar_t*>(p.grad_spikes) + row;
      SNNFAST_BOOL_SWITCH(param_grads, kParamGrads, [&] {
        backward_row<scalar_t, acc_t, R, S, kDetachReset, kParamGrads>(
            len, membrane, u_prev, grad_spikes, grad_membrane, x, grad_x, np, g, v_reset,
            surrogate_param);
      });
      if (p.grad_x) stream_row(static_cast<scalar_t*>(p.grad_x) + row, grad_x, len, streaming);
    }
    stream_fence();
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
      SNNFAST_SURROGATE_SWITCH(p.surrogate, S, [&] {
        SNNFAST_BOOL_SWITCH(p.detach_reset, kDetachReset,
                            [&] { backward<scalar_t, R, S, kDetachReset>(p); });
      });
    });
  });
}

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("lif", TORCH_FN(lif_forward_with<lif_forward_cpu>));
  m.impl("lif_inference", TORCH_FN(lif_inference_with<lif_forward_cpu>));
  m.impl("lif_backward", TORCH_FN(lif_backward_with<lif_backward_cpu>));
  m.impl("lif_events", TORCH_FN(lif_events_with<lif_forward_cpu>));
  // The kernel computes the current from the events itself (LIFParams::current_offsets).
  m.impl("event_linear_lif", TORCH_FN((event_linear_lif_with<lif_forward_cpu, &cpu_event_kernels, true>)));
}

}  // namespace snnfast
