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
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "cpu/event_rows.h"
#include "cpu/spike_scan.h"

#include "event_linear.h"

namespace snnfast {
namespace {

// The conversion in one pass over the spikes: each chunk of rows (one per thread) scans its
// rows into a list of its own and writes each row's offset within that list; then every
// chunk adds the events of the chunks before it to its offsets and copies its list into
// place. The second step touches only the events; the order (rows ascending, neurons
// ascending within a row) does not depend on the chunks.
template <typename U>
at::Tensor convert_rows(const at::Tensor& spikes, SpikeBits bits, at::Tensor& offsets, at::Tensor& not_binary) {
  const U* s = static_cast<const U*>(spikes.data_ptr());
  const int64_t M = spikes.size(0), N = spikes.size(1);
  const U zero_mask = static_cast<U>(bits.zero_mask), one = static_cast<U>(bits.one_bits);
  int64_t* off = offsets.data_ptr<int64_t>();
  const int64_t chunks = std::clamp<int64_t>(at::get_num_threads(), 1, M);
  std::vector<std::vector<int32_t>> lists(chunks);
  std::vector<int64_t> starts(chunks + 1, 0);
  int bad_chunks = 0;
#pragma omp parallel for schedule(static, 1) reduction(+ : bad_chunks)
  for (int64_t c = 0; c < chunks; ++c) {
    std::vector<int32_t>& list = lists[c];
    list.resize(std::max<int64_t>(kMaskBlock, (M / chunks) * N / 16));
    int64_t size = 0;
    uint32_t bad = 0;
    // The bounds in locals: written in the loop's condition, they were divided again at every
    // row (the compiler cannot tell that the stores to the offsets leave them alone).
    const int64_t m_begin = M * c / chunks, m_end = M * (c + 1) / chunks;
    for (int64_t m = m_begin; m < m_end; ++m) {
      const U* row = s + m * N;
      for (int64_t n0 = 0; n0 < N; n0 += kMaskBlock) {
        const uint32_t mask = nonzero_mask(row + n0, std::min(kMaskBlock, N - n0), zero_mask, one, bad);
        if (static_cast<int64_t>(list.size()) < size + kMaskBlock) list.resize(2 * list.size());
        size += write_set_bits(mask, static_cast<int32_t>(n0), list.data() + size);
      }
      off[m + 1] = size;
    }
    starts[c + 1] = size;
    bad_chunks += bad != 0;
  }
  if (bad_chunks > 0) not_binary.fill_(1);
  off[0] = 0;
  for (int64_t c = 0; c < chunks; ++c) starts[c + 1] += starts[c];
  at::Tensor indices = new_index_output({starts[chunks]}, spikes.options().dtype(at::kInt));
  int32_t* idx = indices.data_ptr<int32_t>();
#pragma omp parallel for schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t m_begin = M * c / chunks, m_end = M * (c + 1) / chunks, before = starts[c];
    for (int64_t m = m_begin; m < m_end; ++m) off[m + 1] += before;
    std::copy_n(lists[c].data(), starts[c + 1] - starts[c], idx + starts[c]);
  }
  return indices;
}

// One row per iteration, each 32 spikes a mask whose bytes are the row's next 4 bytes.
template <typename U>
void pack_rows(const at::Tensor& spikes, SpikeBits bits, at::Tensor& packed, at::Tensor& not_binary) {
  const U* s = static_cast<const U*>(spikes.data_ptr());
  const int64_t M = spikes.size(0), N = spikes.size(1), bytes = packed.size(1);
  const U zero_mask = static_cast<U>(bits.zero_mask), one = static_cast<U>(bits.one_bits);
  uint8_t* out = packed.data_ptr<uint8_t>();
  int bad_rows = 0;
#pragma omp parallel for schedule(static) reduction(+ : bad_rows)
  for (int64_t m = 0; m < M; ++m) {
    const U* row = s + m * N;
    uint8_t* dst = out + m * bytes;
    uint32_t bad = 0;
    for (int64_t n0 = 0; n0 < N; n0 += kMaskBlock) {
      const uint32_t mask = nonzero_mask(row + n0, std::min(kMaskBlock, N - n0), zero_mask, one, bad);
      for (int64_t k = n0 / 8; k < std::min(bytes, n0 / 8 + 4); ++k)
        dst[k] = static_cast<uint8_t>(mask >> (8 * (k - n0 / 8)));
    }
    bad_rows += bad != 0;
  }
  if (bad_rows > 0) not_binary.fill_(1);
}

void pack_cpu(const at::Tensor& spikes, SpikeBits bits, at::Tensor& packed, at::Tensor& not_binary) {
  with_spike_bits(bits, [&](auto u) { pack_rows<decltype(u)>(spikes, bits, packed, not_binary); });
}

// Each byte of a row becomes its 8 values, copied from a table of the 256 bytes' values.
template <typename T>
void unpack_rows(const at::Tensor& packed, at::Tensor& spikes) {
  const int64_t M = spikes.size(0), N = spikes.size(1), bytes = packed.size(1);
  std::vector<T> table(256 * 8);
  for (int byte = 0; byte < 256; ++byte)
    for (int j = 0; j < 8; ++j) table[byte * 8 + j] = static_cast<T>((byte >> j) & 1);
  const uint8_t* in = packed.data_ptr<uint8_t>();
  T* out = spikes.data_ptr<T>();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const uint8_t* src = in + m * bytes;
    T* dst = out + m * N;
    for (int64_t k = 0; k < bytes; ++k)
      std::copy_n(table.data() + src[k] * 8, std::min<int64_t>(8, N - 8 * k), dst + 8 * k);
  }
}

void unpack_cpu(const at::Tensor& packed, at::Tensor& spikes) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, spikes.scalar_type(), "bits_to_spikes_cpu",
                                  [&] { unpack_rows<scalar_t>(packed, spikes); });
}

at::Tensor convert_cpu(const at::Tensor& spikes, SpikeBits bits, at::Tensor& offsets, at::Tensor& not_binary) {
  at::Tensor indices;
  with_spike_bits(bits, [&](auto u) { indices = convert_rows<decltype(u)>(spikes, bits, offsets, not_binary); });
  return indices;
}

// One row per iteration: bias plus the weight rows of its active inputs in ascending order
// (event_rows.h; the CUDA kernel adds in the same order, so both give the same bits).
template <typename T>
void linear_rows(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                 const at::Tensor& bias, at::Tensor& y) {
  const int64_t M = y.size(0), out = y.size(1);
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int32_t* idx = indices.data_ptr<int32_t>();
  const T* w = weight_t.data_ptr<T>();
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* yp = y.data_ptr<T>();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < M; ++m) event_row(w, out, b, idx, off[m], off[m + 1], yp + m * out, out);
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

#if defined(__AVX2__)
// wt[i][o] = w[o][i] for the 8 x 8 floats at (o0, i0): eight rows in registers, the standard
// unpack / shuffle / permute network, eight rows out.
inline void transpose_8x8(const float* w, int64_t in, float* wt, int64_t out) {
  __m256 r[8], t[8];
  for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(w + k * in);
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    r[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    _mm256_storeu_ps(wt + k * out, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(wt + (k + 4) * out, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}
#endif

// By tiles of kTile x kTile elements, which stay in L1 while they are read along one dimension
// and written along the other (float32: by 8 x 8 blocks in registers). torch's copy of the
// transposed view took 0.15-0.3 ms for the 256 x 700 float32 weight of bench_events on one
// thread, and the weight is transposed at every call: a tenth of the event forward at 3 %.
template <typename T>
void transpose_tiles(const at::Tensor& weight, at::Tensor& weight_t) {
  constexpr int64_t kTile = 32;
  const int64_t out = weight.size(0), in = weight.size(1);
  const T* __restrict__ w = weight.data_ptr<T>();
  T* __restrict__ wt = weight_t.data_ptr<T>();
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, kTile * out));
  at::parallel_for(0, (in + kTile - 1) / kTile, grain, [&](int64_t first, int64_t last) {
    for (int64_t i0 = first * kTile; i0 < std::min(in, last * kTile); i0 += kTile) {
      const int64_t i1 = std::min(in, i0 + kTile);
      for (int64_t o0 = 0; o0 < out; o0 += kTile) {
        const int64_t o1 = std::min(out, o0 + kTile);
        int64_t i = i0;
#if defined(__AVX2__)
        if constexpr (std::is_same_v<T, float>) {
          for (; i + 8 <= i1; i += 8) {
            int64_t o = o0;
            for (; o + 8 <= o1; o += 8) transpose_8x8(w + o * in + i, in, wt + i * out + o, out);
            for (int64_t k = i; k < i + 8; ++k)
              for (int64_t oo = o; oo < o1; ++oo) wt[k * out + oo] = w[oo * in + k];
          }
        }
#endif
        for (; i < i1; ++i)
          for (int64_t o = o0; o < o1; ++o) wt[i * out + o] = w[o * in + i];
      }
    }
  });
}

void transpose_cpu(const at::Tensor& weight, at::Tensor& weight_t) {
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "event_linear_transpose_cpu",
                             [&] { transpose_tiles<scalar_t>(weight, weight_t); });
}

constexpr EventKernels kCPUEventKernels{nullptr,    nullptr,    convert_cpu,     pack_cpu,
                                        unpack_cpu, linear_cpu, weight_grad_cpu, transpose_cpu};

}  // namespace

const EventKernels cpu_event_kernels = kCPUEventKernels;

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("spikes_to_events", TORCH_FN(spikes_to_events_with<&kCPUEventKernels>));
  m.impl("spikes_to_bits", TORCH_FN(spikes_to_bits_with<&kCPUEventKernels>));
  m.impl("bits_to_spikes", TORCH_FN(bits_to_spikes_with<&kCPUEventKernels>));
  m.impl("event_linear", TORCH_FN(event_linear_with<&kCPUEventKernels>));
  m.impl("event_linear_weight_grad", TORCH_FN(event_linear_weight_grad_with<&kCPUEventKernels>));
}

}  // namespace snnfast
