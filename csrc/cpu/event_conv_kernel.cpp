// The event-driven Conv2d on the CPU (event_conv.h): OpenMP over rows (forward) or over fixed
// chunks of rows (weight gradient), the innermost loops over the contiguous output channels
// so that they vectorize. No atomics: every output element has one owner thread, and every
// sum runs in a fixed order, so two runs give the same bits whatever the thread count.
#include <ATen/Dispatch.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "event_conv.h"

namespace snnfast {
namespace {

// f(tap, position) for every kernel position that the input at `index` (c * height * width
// + y * width + x) reaches: tap = (c * kernel_h + ky) * kernel_w + kx, the row of weight_t,
// and position = oy * out_w + ox, the output position, with oy * stride_h + ky = y + pad_h
// (and the same across). Positions come in ascending order.
template <typename F>
inline void for_each_tap(const ConvGeometry& g, int32_t index, F&& f) {
  const int64_t plane = g.height * g.width;
  const int64_t c = index / plane, rest = index - c * plane;
  const int64_t y = rest / g.width + g.pad_h, x = rest % g.width + g.pad_w;  // in the padded input
  // ky = y - oy * stride_h in [0, kernel_h): oy from ceil((y - kernel_h + 1) / stride_h), at
  // least 0, to floor(y / stride_h), at most out_h - 1 (and the same across).
  const int64_t oy0 = std::max<int64_t>(0, (y - g.kernel_h + g.stride_h) / g.stride_h);
  const int64_t oy1 = std::min(g.out_h - 1, y / g.stride_h);
  const int64_t ox0 = std::max<int64_t>(0, (x - g.kernel_w + g.stride_w) / g.stride_w);
  const int64_t ox1 = std::min(g.out_w - 1, x / g.stride_w);
  for (int64_t oy = oy0; oy <= oy1; ++oy) {
    const int64_t tap_row = (c * g.kernel_h + y - oy * g.stride_h) * g.kernel_w;
    for (int64_t ox = ox0; ox <= ox1; ++ox) f(tap_row + x - ox * g.stride_w, oy * g.out_w + ox);
  }
}

// dst[0 .. len) += src[0 .. len): the output channels, contiguous on both sides.
template <typename T>
inline void add_channels(T* __restrict dst, const T* __restrict src, int64_t len) {
  for (int64_t o = 0; o < len; ++o) dst[o] += src[o];
}

// One row per iteration: every output position starts at the bias (or 0), then each event
// adds its weight vectors at the positions it reaches, in the order of the events.
template <typename T>
void conv_rows(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
               const at::Tensor& bias, const ConvGeometry& g, at::Tensor& y) {
  const int64_t N = y.size(0), out = g.out_channels, positions = g.out_h * g.out_w;
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int32_t* idx = indices.data_ptr<int32_t>();
  const T* w = weight_t.data_ptr<T>();
  const T* b = bias.defined() ? bias.data_ptr<T>() : nullptr;
  T* yp = y.data_ptr<T>();
#pragma omp parallel for schedule(static)
  for (int64_t m = 0; m < N; ++m) {
    T* row = yp + m * positions * out;
    if (b != nullptr) {
      for (int64_t p = 0; p < positions; ++p) std::memcpy(row + p * out, b, out * sizeof(T));
    } else {
      std::fill(row, row + positions * out, T(0));
    }
    for (int64_t k = off[m]; k < off[m + 1]; ++k)
      for_each_tap(g, idx[k], [&](int64_t tap, int64_t position) {
        add_channels(row + position * out, w + tap * out, out);
      });
  }
}

void conv_cpu(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
              const at::Tensor& bias, const ConvGeometry& geometry, at::Tensor& y) {
  AT_DISPATCH_FLOATING_TYPES(y.scalar_type(), "event_conv2d_cpu",
                             [&] { conv_rows<scalar_t>(offsets, indices, weight_t, bias, geometry, y); });
}

// The chunks of the weight gradient: at least kChunkRows rows each, at most kMaxChunks of
// them, and at most kPartialElements elements of partials in all (a large weight gets fewer
// chunks: a partial is a whole weight). All three are constants, so the chunks, and with
// them the order of every sum, depend on the shapes only, not on the threads.
constexpr int64_t kChunkRows = 16;
constexpr int64_t kMaxChunks = 64;
constexpr int64_t kPartialElements = int64_t{1} << 24;

// Chunk j sums the rows of its range into partial j (partial 0 is grad_weight_t itself), in
// the order of the rows and their events; then each element adds partials 1, 2, ... to
// partial 0, in the order of the chunks.
template <typename T>
void weight_grad_chunks(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                        const ConvGeometry& g, at::Tensor& grad_weight_t) {
  const int64_t N = grad_y.size(0), out = g.out_channels, positions = g.out_h * g.out_w;
  const int64_t numel = grad_weight_t.numel();
  const int64_t chunks = std::clamp<int64_t>(
      std::min({(N + kChunkRows - 1) / kChunkRows, kMaxChunks, kPartialElements / numel}), 1, kMaxChunks);
  at::Tensor partials = at::empty({chunks - 1, numel}, grad_weight_t.options());
  const int64_t* off = offsets.data_ptr<int64_t>();
  const int32_t* idx = indices.data_ptr<int32_t>();
  const T* gy = grad_y.data_ptr<T>();
  T* first = grad_weight_t.data_ptr<T>();
  T* rest = partials.data_ptr<T>();
#pragma omp parallel for schedule(static, 1)
  for (int64_t j = 0; j < chunks; ++j) {
    T* part = j == 0 ? first : rest + (j - 1) * numel;
    std::fill(part, part + numel, T(0));
    for (int64_t m = N * j / chunks; m < N * (j + 1) / chunks; ++m) {
      const T* grad_row = gy + m * positions * out;
      for (int64_t k = off[m]; k < off[m + 1]; ++k)
        for_each_tap(g, idx[k], [&](int64_t tap, int64_t position) {
          add_channels(part + tap * out, grad_row + position * out, out);
        });
    }
  }
  if (chunks == 1) return;
  constexpr int64_t kBlock = 1024;  // elements per job: partials read in runs of 4-8 KiB
#pragma omp parallel for schedule(static)
  for (int64_t e0 = 0; e0 < numel; e0 += kBlock) {
    const int64_t len = std::min(kBlock, numel - e0);
    for (int64_t j = 1; j < chunks; ++j) add_channels(first + e0, rest + (j - 1) * numel + e0, len);
  }
}

void weight_grad_cpu(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                     const ConvGeometry& geometry, at::Tensor& grad_weight_t) {
  AT_DISPATCH_FLOATING_TYPES(grad_y.scalar_type(), "event_conv2d_weight_grad_cpu", [&] {
    weight_grad_chunks<scalar_t>(offsets, indices, grad_y, geometry, grad_weight_t);
  });
}

constexpr EventConvKernels kCPUEventConvKernels{conv_cpu, weight_grad_cpu};

}  // namespace

TORCH_LIBRARY_IMPL(snnfast, CPU, m) {
  m.impl("event_conv2d", TORCH_FN(event_conv2d_with<&kCPUEventConvKernels>));
  m.impl("event_conv2d_weight_grad", TORCH_FN(event_conv2d_weight_grad_with<&kCPUEventConvKernels>));
}

}  // namespace snnfast
