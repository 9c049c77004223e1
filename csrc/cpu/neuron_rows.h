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

// The parameters of the neurons m0, m0 + 1, ... (m = b * N + n) of a row, from neuron_values.
template <typename acc_t>
struct RowParams {
  acc_t beta[kRow], alpha[kRow], threshold[kRow], u0[kRow];

  RowParams(const LIFParams& p, int64_t m0, int64_t len) {
    int64_t b = m0 / p.N, n = m0 % p.N;
    for (int64_t j = 0; j < len; ++j) {
      const NeuronValues<acc_t> v = neuron_values<acc_t>(p, b, n);
      beta[j] = v.beta;
      alpha[j] = v.alpha;
      threshold[j] = v.threshold;
      u0[j] = v.u0;
      if (++n == p.N) n = 0, ++b;
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
