// The event ops on the CPU (event_linear.h): OpenMP over rows (conversion, forward) or over
// blocks of the weight gradient (backward), the innermost loops over contiguous features so
// that they vectorize. No atomics: every output element has one owner thread, and every sum
// runs in a fixed order (ascending events), so two runs give the same bits whatever the
// thread count.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "event_linear.h"

namespace snnfast {
namespace {

// Elements tested at once before looking at each of them: most blocks of a sparse row hold
// no spike, and the test of a block is one vectorized OR.
constexpr int64_t kSkipBlock = 32;

template <typename U>
void count_rows(const at::Tensor& spikes, SpikeBits bits, at::Tensor& counts, at::Tensor& not_binary) {
  const U* s = static_cast<const U*>(spikes.data_ptr());
  const int64_t M = spikes.size(0), N = spikes.size(1);
  const U zero_mask = static_cast<U>(bits.zero_mask), one = static_cast<U>(bits.one_bits);
  int64_t* c = counts.data_ptr<int64_t>();
  int bad_rows = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad_rows)
  for (int64_t m = 0; m < M; ++m) {
    const U* row = s + m * N;
    int64_t count = 0;
    int bad = 0;
    for (int64_t n = 0; n < N; ++n) {
      const bool nonzero = (row[n] & zero_mask) != 0;
      count += nonzero;
      bad |= nonzero & (row[n] != one);
    }
    c[m] = count;
    bad_rows += bad;
  }
  if (bad_rows > 0) not_binary.fill_(1);
}

template <typename U>
void fill_rows(const at::Tensor& spikes, SpikeBits bits, const at::Tensor& offsets, at::Tensor& indices) {
  const U* s = static_cast<const U*>(spikes.data_ptr());
  const int64_t M = spikes.size(0), N = spikes.size(1);
  const U zero_mask = static_cast<U>(bits.zero_mask);
  const int64_t* off = offsets.data_ptr<int64_t>();
  int32_t* idx = indices.data_ptr<int32_t>();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const U* row = s + m * N;
    int32_t* out = idx + off[m];
    for (int64_t n0 = 0; n0 < N; n0 += kSkipBlock) {
      const int64_t n1 = std::min(N, n0 + kSkipBlock);
      U any = 0;
      for (int64_t n = n0; n < n1; ++n) any |= row[n];
      if ((any & zero_mask) == 0) continue;
      for (int64_t n = n0; n < n1; ++n)
        if ((row[n] & zero_mask) != 0) *out++ = static_cast<int32_t>(n);
    }
  }
}

void count_cpu(const at::Tensor& spikes, SpikeBits bits, at::Tensor& counts, at::Tensor& not_binary) {
  with_spike_bits(bits, [&](auto u) { count_rows<decltype(u)>(spikes, bits, counts, not_binary); });
}

void fill_cpu(const at::Tensor& spikes, SpikeBits bits, const at::Tensor& offsets, at::Tensor& indices) {
  with_spike_bits(bits, [&](auto u) { fill_rows<decltype(u)>(spikes, bits, offsets, indices); });
}

template <typename T>
void linear_rows(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                 const at::Tensor& bias, at::Tensor& y) {
  const int64_t M = y.size(0), out = y.size(1);
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int32_t* idx = indices.data_ptr<int32_t>();
  const T* __restrict__ w = weight_t.data_ptr<T>();
  const T* __restrict__ b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* __restrict__ yp = y.data_ptr<T>();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    T* __restrict__ row = yp + m * out;
    if (b != nullptr) {
      std::memcpy(row, b, out * sizeof(T));
    } else {
      std::fill(row, row + out, T(0));
    }
    // bias, then the weight rows of the active inputs in ascending order: the CUDA kernel
    // adds in the same order, so both give the same bits.
    for (int64_t k = off[m]; k < off[m + 1]; ++k) {
      const T* __restrict__ wr = w + static_cast<int64_t>(idx[k]) * out;
      for (int64_t o = 0; o < out; ++o) row[o] += wr[o];
    }
  }
}

void linear_cpu(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                const at::Tensor& bias, at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "event_linear_cpu",
                             [&] { linear_rows<scalar_t>(offsets, indices, weight_t, bias, y); });
}

// The weight gradient is split into jobs of a block of output features (at least 16, a
// vector or two) times a range of input features: a job owns its block of grad_weight_t and
// scans every row's events, so no two threads write one element. With few output features
// (the last layer) there are fewer blocks than threads, and the input range splits the rest;
// a row's indices are ascending, so a binary search finds the events in the range.
template <typename T>
void weight_grad_blocks(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                        at::Tensor& grad_weight_t) {
  const int64_t M = grad_y.size(0), out = grad_y.size(1), in = grad_weight_t.size(0);
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int32_t* idx = indices.data_ptr<int32_t>();
  const T* __restrict__ g = grad_y.data_ptr<T>();
  T* __restrict__ gw = grad_weight_t.data_ptr<T>();
  const int64_t threads = at::get_num_threads();
  const int64_t block = std::max<int64_t>(16, (out + threads - 1) / threads + 15) / 16 * 16;
  const int64_t blocks = (out + block - 1) / block;
  const int64_t ranges = std::min<int64_t>(std::max<int64_t>(1, (threads + blocks - 1) / blocks), std::max<int64_t>(in, 1));
  const int64_t range = (in + ranges - 1) / ranges;
#pragma omp parallel for schedule(static, 1) collapse(2)
  for (int64_t j = 0; j < blocks; ++j) {
    for (int64_t r = 0; r < ranges; ++r) {
      const int64_t o0 = j * block, len = std::min(out, o0 + block) - o0;
      const int64_t i0 = r * range, i1 = std::min(in, i0 + range);
      for (int64_t i = i0; i < i1; ++i) std::fill(gw + i * out + o0, gw + i * out + o0 + len, T(0));
      for (int64_t m = 0; m < M; ++m) {
        int64_t k0 = off[m], k1 = off[m + 1];
        if (ranges > 1) {
          k0 = std::lower_bound(idx + k0, idx + k1, static_cast<int32_t>(i0)) - idx;
          k1 = std::lower_bound(idx + k0, idx + k1, static_cast<int32_t>(i1)) - idx;
        }
        const T* __restrict__ gr = g + m * out + o0;
        for (int64_t k = k0; k < k1; ++k) {
          T* __restrict__ dst = gw + static_cast<int64_t>(idx[k]) * out + o0;
          for (int64_t o = 0; o < len; ++o) dst[o] += gr[o];
        }
      }
    }
  }
}

void weight_grad_cpu(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                     at::Tensor& grad_weight_t) {
  AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "event_linear_weight_grad_cpu",
                             [&] { weight_grad_blocks<scalar_t>(offsets, indices, grad_y, grad_weight_t); });
}

constexpr EventKernels kCPUEventKernels{count_cpu, fill_cpu, linear_cpu, weight_grad_cpu};

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("spikes_to_events", TORCH_FN(spikes_to_events_with<&kCPUEventKernels>));
  m.impl("event_linear", TORCH_FN(event_linear_with<&kCPUEventKernels>));
  m.impl("event_linear_weight_grad", TORCH_FN(event_linear_weight_grad_with<&kCPUEventKernels>));
}

}  // namespace snnfast
