// Schemas of the event-driven Conv2d ops and the device-independent glue behind them
// (event_conv.h): the checks of the arguments, each naming the one it rejects, and the
// allocation of the outputs.
#include "event_conv.h"

#include <limits>

#include "event_linear.h"
#include "neuron_glue.h"
#include "op_library.h"

namespace snnfast {
namespace {

// The geometry of event_conv2d's arguments, checked: stride >= 1, padding >= 0, and a kernel
// of at least 1 x 1 that fits the padded input (F.conv2d's rules), so that out_h, out_w >= 1.
ConvGeometry conv_geometry(const char* op, int64_t in_channels, int64_t height, int64_t width,
                           int64_t out_channels, int64_t kernel_h, int64_t kernel_w, at::IntArrayRef stride,
                           at::IntArrayRef padding) {
  TORCH_CHECK(stride.size() == 2 && stride[0] >= 1 && stride[1] >= 1, op,
              ": stride must be two integers >= 1, got ", stride);
  TORCH_CHECK(padding.size() == 2 && padding[0] >= 0 && padding[1] >= 0, op,
              ": padding must be two integers >= 0, got ", padding);
  TORCH_CHECK(kernel_h >= 1 && kernel_w >= 1, op, ": the kernel must be at least 1 x 1, got ", kernel_h, " x ",
              kernel_w);
  TORCH_CHECK(in_channels >= 1 && height >= 1 && width >= 1, op,
              ": in_channels, height and width must be >= 1, got ", in_channels, ", ", height, ", ", width);
  TORCH_CHECK(in_channels * height * width <= std::numeric_limits<int32_t>::max(), op, ": a sample of ",
              in_channels, " x ", height, " x ", width, " inputs is too large for int32 indices");
  TORCH_CHECK(kernel_h <= height + 2 * padding[0] && kernel_w <= width + 2 * padding[1], op, ": the kernel (",
              kernel_h, " x ", kernel_w, ") is larger than the padded input (", height + 2 * padding[0], " x ",
              width + 2 * padding[1], ")");
  ConvGeometry g{in_channels, height, width, out_channels, kernel_h, kernel_w,
                 stride[0], stride[1], padding[0], padding[1], 0, 0};
  g.out_h = (height + 2 * g.pad_h - kernel_h) / g.stride_h + 1;
  g.out_w = (width + 2 * g.pad_w - kernel_w) / g.stride_w + 1;
  return g;
}

}  // namespace

at::Tensor event_conv2d(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t_in,
                        const std::optional<at::Tensor>& bias_in, int64_t height, int64_t width,
                        at::IntArrayRef stride, at::IntArrayRef padding, const EventConvKernels& kernels) {
  constexpr const char* op = "snnfast.event_conv2d";
  TORCH_CHECK(weight_t_in.dim() == 4, op, ": weight_t must be [in_channels, kH, kW, out_channels] (the "
              "weight permuted by (1, 2, 3, 0)), got shape ", weight_t_in.sizes());
  check_float(op, "weight_t", weight_t_in);
  const ConvGeometry g = conv_geometry(op, weight_t_in.size(0), height, width, weight_t_in.size(3),
                                       weight_t_in.size(1), weight_t_in.size(2), stride, padding);
  check_events(op, offsets, indices, g.in_channels * height * width, weight_t_in,
               "in_channels x height x width of a sample");
  at::Tensor bias;
  if (bias_in.has_value()) {
    TORCH_CHECK(bias_in->dim() == 1 && bias_in->size(0) == g.out_channels, op, ": bias must be [",
                g.out_channels, "] (out_channels), got shape ", bias_in->sizes());
    TORCH_CHECK(bias_in->scalar_type() == weight_t_in.scalar_type() && bias_in->device() == weight_t_in.device(),
                op, ": bias must have weight_t's dtype and device (", weight_t_in.scalar_type(), " on ",
                weight_t_in.device(), "), got ", bias_in->scalar_type(), " on ", bias_in->device());
    bias = bias_in->contiguous();
  }
  const at::DeviceGuard device_guard(weight_t_in.device());
  const int64_t N = offsets.size(0) - 1;
  at::Tensor y = new_output({N, g.out_h, g.out_w, g.out_channels}, weight_t_in.options());
  if (y.numel() > 0)
    kernels.conv(offsets.contiguous(), indices.contiguous(), weight_t_in.contiguous(), bias, g, y);
  return y;
}

at::Tensor event_conv2d_weight_grad(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& grad_y_in,
                                    int64_t in_channels, int64_t height, int64_t width, at::IntArrayRef kernel_size,
                                    at::IntArrayRef stride, at::IntArrayRef padding,
                                    const EventConvKernels& kernels) {
  constexpr const char* op = "snnfast.event_conv2d_weight_grad";
  TORCH_CHECK(kernel_size.size() == 2, op, ": kernel_size must be two integers, got ", kernel_size);
  check_float(op, "grad_y", grad_y_in);
  TORCH_CHECK(grad_y_in.dim() == 4, op, ": grad_y must be [rows, out_h, out_w, out_channels] (channels-last), "
              "got shape ", grad_y_in.sizes());
  const ConvGeometry g = conv_geometry(op, in_channels, height, width, grad_y_in.size(3), kernel_size[0],
                                       kernel_size[1], stride, padding);
  const int64_t N = offsets.dim() == 1 ? offsets.size(0) - 1 : -1;
  TORCH_CHECK(grad_y_in.size(0) == N && grad_y_in.size(1) == g.out_h && grad_y_in.size(2) == g.out_w, op,
              ": grad_y must be [rows, out_h, out_w, out_channels] = [", N, ", ", g.out_h, ", ", g.out_w,
              ", out_channels] (the rows of offsets, the output of ", height, " x ", width,
              " at this kernel_size, stride and padding), got shape ", grad_y_in.sizes());
  check_events(op, offsets, indices, in_channels * height * width, grad_y_in,
               "in_channels x height x width of a sample");
  const at::DeviceGuard device_guard(grad_y_in.device());
  at::Tensor grad_weight_t = new_output({in_channels, g.kernel_h, g.kernel_w, g.out_channels}, grad_y_in.options());
  if (grad_weight_t.numel() > 0)
    kernels.weight_grad(offsets.contiguous(), indices.contiguous(), grad_y_in.contiguous(), g, grad_weight_t);
  return grad_weight_t;
}

SNNFAST_LIBRARY_FRAGMENT(m) {
  // y [rows, out_h, out_w, out] (channels-last) = conv2d of the events' samples [in_channels,
  // height, width] with weight_t = the weight [out, in_channels, kH, kW] permuted to
  // [in_channels, kH, kW, out], plus bias; zero padding, dilation 1, groups 1.
  m.def("event_conv2d(Tensor offsets, Tensor indices, Tensor weight_t, Tensor? bias, int height, int width, "
        "int[2] stride, int[2] padding) -> Tensor");
  // grad of weight_t [in_channels, kH, kW, out] over the events, from grad_y [rows, out_h, out_w, out].
  m.def("event_conv2d_weight_grad(Tensor offsets, Tensor indices, Tensor grad_y, int in_channels, int height, "
        "int width, int[2] kernel_size, int[2] stride, int[2] padding) -> Tensor");
}

}  // namespace snnfast
