// What the two CPU kernels (lif_kernel.cpp, recurrent_lif_kernel.cpp) share: a row of
// neighbouring neurons with its parameters copied to the stack, and the state u_{t-1} of a
// row rebuilt from the saved trace. Each inner loop is a branch-free SIMD loop over a row.
#pragma once

#include <algorithm>
#include <cstdint>

#include "snnfast/lif_step.h"
#include "snnfast/neuron.h"

namespace snnfast {
namespace {

// Neurons per row: a row's state, parameters and partial sums stay in L1, and each time step
// reads and writes runs of 1 KiB, long enough for the hardware prefetcher.
constexpr int64_t kRow = 256;

// dst[j] = src[base + j * stride], j < len: one value of the neurons of a run that lies
// within one sample. A fill or a copy in the usual cases (stride 0: one value per layer;
// stride 1: one per neuron), so that loading a row costs a vector loop; a gather per neuron
// was most of the forward's time at T = 1.
template <typename acc_t>
void load_run(acc_t* __restrict dst, const void* src, int64_t base, int64_t stride, int64_t len) {
  const acc_t* values = static_cast<const acc_t*>(src) + base;
  if (stride == 0) {
    std::fill(dst, dst + len, values[0]);
  } else if (stride == 1) {
    std::copy(values, values + len, dst);
  } else {
    for (int64_t j = 0; j < len; ++j) dst[j] = values[j * stride];
  }
}

// The parameters of the neurons m0, m0 + 1, ... (m = b * N + n) of a row: what
// neuron_values (snnfast/lif_step.h) gives each of them, loaded a run of one sample at a time.
template <typename acc_t>
struct RowParams {
  acc_t beta[kRow], alpha[kRow], threshold[kRow], u0[kRow];

  RowParams(const LIFParams& p, int64_t m0, int64_t len) {
    int64_t b = m0 / p.N, n = m0 % p.N;
    for (int64_t j = 0; j < len; n = 0, ++b) {
      const int64_t run = std::min(len - j, p.N - n);
      load_run(beta + j, p.beta, n * p.beta_stride, p.beta_stride, run);
      load_run(alpha + j, p.alpha, n * p.alpha_stride, p.alpha_stride, run);
      load_run(threshold + j, p.threshold, n * p.threshold_stride, p.threshold_stride, run);
      load_run(u0 + j, p.u0, b * p.u0_batch_stride + n * p.u0_stride, p.u0_stride, run);
      j += run;
    }
  }
};

// u_{t-1} of a row: from the trace's row h_{t-1}, or u_0 where membrane_prev is null (t = 0).
template <Reset R, typename acc_t>
void previous_state_row(int64_t len, const acc_t* __restrict membrane_prev,
                        const RowParams<acc_t>& np, acc_t v_reset, acc_t* __restrict u_prev) {
  if (membrane_prev == nullptr) {
    std::copy(np.u0, np.u0 + len, u_prev);
    return;
  }
  const acc_t* __restrict threshold = np.threshold;
#pragma GCC ivdep
  for (int64_t j = 0; j < len; ++j)
    u_prev[j] = state_after<R>(membrane_prev[j], threshold[j], v_reset);
}

}  // namespace
}  // namespace snnfast
