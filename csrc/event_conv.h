// Event-driven Conv2d: y = conv2d(S, W) + b computed only on the spikes of S that fired.
//
// The events are event_linear.h's format over samples: row m is one sample [in_channels,
// height, width] of a [N, in_channels, height, width] spike tensor (N = T x B), and its
// indices are the flattened c * height * width + y * width + x of its spikes, ascending.
// The weight is taken as weight_t = the weight [out, in_channels, kH, kW] permuted to
// [in_channels, kH, kW, out] (contiguous), and the output is channels-last, y [N, out_h,
// out_w, out]: each event scatters, for every kernel position (ky, kx) whose output position
// is inside y, the contiguous vector weight_t[c, ky, kx, :] into the contiguous y[m, oy, ox, :]
// (vectorised over the output channels). Dilation 1 and groups 1 only.
//
// The glue (event_conv.cpp) checks the arguments and allocates; a device file supplies the
// kernels below and registers the ops through the *_with templates, as event_linear.h does.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>

namespace snnfast {

// The shape of one convolution: a sample [in_channels, height, width] to [out_channels,
// out_h, out_w] by a [kernel_h, kernel_w] kernel at the given stride and zero padding.
struct ConvGeometry {
  int64_t in_channels, height, width, out_channels, kernel_h, kernel_w;
  int64_t stride_h, stride_w, pad_h, pad_w, out_h, out_w;
};

struct EventConvKernels {
  // y [N, out_h, out_w, out] = bias (none: 0) + the scatter of every event of row m, in the
  // order of the events, each to its output positions in ascending order (deterministic
  // whatever the threads).
  void (*conv)(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
               const at::Tensor& bias, const ConvGeometry& geometry, at::Tensor& y);
  // grad_weight_t [in_channels, kH, kW, out] = the sum over the events (m, c, y, x) and the
  // kernel positions of grad_y[m, oy, ox, :] into grad_weight_t[c, ky, kx, :]: each chunk of a
  // fixed number of rows (not of threads) sums its own partial, and the partials are added
  // in the order of the chunks, so that two runs give the same bits whatever the threads.
  void (*weight_grad)(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                      const ConvGeometry& geometry, at::Tensor& grad_weight_t);
};

at::Tensor event_conv2d(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                        const std::optional<at::Tensor>& bias, int64_t height, int64_t width,
                        at::IntArrayRef stride, at::IntArrayRef padding, const EventConvKernels& kernels);
at::Tensor event_conv2d_weight_grad(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y,
                                    int64_t in_channels, int64_t height, int64_t width, at::IntArrayRef kernel_size,
                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                    const EventConvKernels& kernels);

// The registered ops' signatures, bound to one device's kernels.
template <const EventConvKernels* kernels>
at::Tensor event_conv2d_with(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                             const std::optional<at::Tensor>& bias, int64_t height, int64_t width,
                             at::IntArrayRef stride, at::IntArrayRef padding) {
  return event_conv2d(offsets, indices, weight_t, bias, height, width, stride, padding, *kernels);
}
template <const EventConvKernels* kernels>
at::Tensor event_conv2d_weight_grad_with(const at::Tensor& offsets, const at::Tensor& indices,
                                         const at::Tensor& grad_y, int64_t in_channels, int64_t height,
                                         int64_t width, at::IntArrayRef kernel_size, at::IntArrayRef stride,
                                         at::IntArrayRef padding) {
  return event_conv2d_weight_grad(offsets, indices, grad_y, in_channels, height, width, kernel_size, stride,
                                  padding, *kernels);
}

}  // namespace snnfast
