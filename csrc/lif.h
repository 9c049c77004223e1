// The glue of the fused LIF op, shared by every device: argument checks, allocation, the
// LIFParams it fills, and the reduction of parameter gradients. A device file supplies only
// its kernels and registers them through lif_forward_with / lif_backward_with.
#pragma once

#include <ATen/ATen.h>

#include <array>
#include <optional>
#include <string>
#include <tuple>

#include "snnfast/neuron.h"

namespace snnfast {

// A device's kernel: runs the params for the dtype of x.
using LIFKernel = void (*)(const LIFParams&, at::ScalarType);

using LIFForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using LIFInferenceResult = std::tuple<at::Tensor, at::Tensor>;
using LIFBackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

LIFForwardResult lif_forward(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& alpha,
                             const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                             const std::string& reset, double v_reset, bool detach_reset,
                             const std::string& surrogate, double surrogate_param,
                             bool save_membrane, LIFKernel kernel);

LIFBackwardResult lif_backward(const at::Tensor& grad_spikes,
                               const std::optional<at::Tensor>& grad_membrane,
                               const std::optional<at::Tensor>& grad_u_last,
                               const at::Tensor& membrane, const std::optional<at::Tensor>& x,
                               const at::Tensor& beta, const at::Tensor& alpha,
                               const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                               const std::string& reset, double v_reset, bool detach_reset,
                               const std::string& surrogate, double surrogate_param,
                               std::array<bool, 5> output_mask, LIFKernel kernel);

// The signatures of the registered ops, bound to one device's kernels.
template <LIFKernel kernel>
LIFForwardResult lif_forward_with(const at::Tensor& x, const at::Tensor& beta,
                                  const at::Tensor& alpha, const at::Tensor& threshold,
                                  const std::optional<at::Tensor>& u0, c10::string_view reset,
                                  double v_reset, bool detach_reset, c10::string_view surrogate,
                                  double surrogate_param) {
  return lif_forward(x, beta, alpha, threshold, u0, std::string(reset), v_reset, detach_reset,
                     std::string(surrogate), surrogate_param, /*save_membrane=*/true, kernel);
}

// The inference op: the forward without the membrane trace (read x, write the spikes).
template <LIFKernel kernel>
LIFInferenceResult lif_inference_with(const at::Tensor& x, const at::Tensor& beta,
                                      const at::Tensor& alpha, const at::Tensor& threshold,
                                      const std::optional<at::Tensor>& u0, c10::string_view reset,
                                      double v_reset, bool detach_reset,
                                      c10::string_view surrogate, double surrogate_param) {
  const auto [spikes, membrane, u_last] =
      lif_forward(x, beta, alpha, threshold, u0, std::string(reset), v_reset, detach_reset,
                  std::string(surrogate), surrogate_param, /*save_membrane=*/false, kernel);
  return {spikes, u_last};
}

template <LIFKernel kernel>
LIFBackwardResult lif_backward_with(const at::Tensor& grad_spikes,
                                    const std::optional<at::Tensor>& grad_membrane,
                                    const std::optional<at::Tensor>& grad_u_last,
                                    const at::Tensor& membrane,
                                    const std::optional<at::Tensor>& x, const at::Tensor& beta,
                                    const at::Tensor& alpha, const at::Tensor& threshold,
                                    const std::optional<at::Tensor>& u0, c10::string_view reset,
                                    double v_reset, bool detach_reset,
                                    c10::string_view surrogate, double surrogate_param,
                                    std::array<bool, 5> output_mask) {
  return lif_backward(grad_spikes, grad_membrane, grad_u_last, membrane, x, beta, alpha,
                      threshold, u0, std::string(reset), v_reset, detach_reset,
                      std::string(surrogate), surrogate_param, output_mask, kernel);
}

}  // namespace snnfast
