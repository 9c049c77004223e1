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

// The spikes [T, B, *F] as events over the T x B rows of N neurons (csrc/event_linear.h's
// format: offsets [T * B + 1] int64, indices int32 ascending within a row), which the forward
// kernel emits from its own pass where LIFParams::events points here (the CPU's; on CUDA the
// glue converts the spikes instead: lif_events_with). The glue allocates offsets; the kernel
// fills them and allocates indices (new_index_output) once it knows their number.
struct SpikeEvents {
  at::Tensor offsets, indices;
};

struct EventKernels;  // csrc/event_linear.h

// The input current as events (LIFParams::current_offsets): event_linear's inputs, checked,
// weight_t [in, N] and bias contiguous (bias undefined: none).
struct EventCurrent {
  at::Tensor offsets, indices, weight_t, bias;
};

using LIFForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using LIFInferenceResult = std::tuple<at::Tensor, at::Tensor>;
using LIFEventsResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;
using LIFBackwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

// Where current is given, x only gives the shape [T, B, N] and dtype of the current (its
// values are not read) and the kernel computes each step's current from the events.
LIFForwardResult lif_forward(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& alpha,
                             const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                             const std::string& reset, double v_reset, bool detach_reset,
                             const std::string& surrogate, double surrogate_param,
                             bool save_membrane, LIFKernel kernel, SpikeEvents* events = nullptr,
                             const EventKernels* event_kernels = nullptr,
                             const EventCurrent* current = nullptr);

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

// The last step of a forward op that returns its spikes as events (lif_events,
// recurrent_lif_events), once the kernel has run: converts spike_rows [T x B, N] with the
// device's event kernels where it has them (its kernel emits none); otherwise, where the
// kernel emits the events but never ran (no neurons, or no steps), gives it none.
void finish_spike_events(SpikeEvents* events, const EventKernels* event_kernels, const at::Tensor& spike_rows);

// lif_events' outputs from lif_forward's and the events: an empty tensor in place of the
// membrane trace where it was not saved.
inline LIFEventsResult events_result(const LIFForwardResult& forward, bool save_membrane, const SpikeEvents& events) {
  const auto& [spikes, membrane, u_last] = forward;
  return {spikes, save_membrane ? membrane : at::empty({0}, u_last.options()), u_last, events.offsets,
          events.indices};
}

// The forward op that also returns the spikes as events (SpikeEvents), with the membrane
// trace where save_membrane (else an empty tensor in its place). Where event_kernels is null
// the LIF kernel emits the events from its own pass (the CPU's: its threads own time blocks
// of whole rows); otherwise the kernel writes the dense spikes as lif does and the glue
// converts them with the device's event kernels (spikes_to_events: count per row, prefix
// sum, fill), the CUDA way: there a thread owns one neuron for the whole sequence, so the
// neurons of a row are spread over threads and blocks, and emitting ascending indices from
// the forward kernel would need a scan across blocks at every step; the two extra passes read
// the spikes in coalesced warp tiles instead (csrc/cuda/event_linear_kernel.cuh).
template <LIFKernel kernel, const EventKernels* event_kernels = nullptr>
LIFEventsResult lif_events_with(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& alpha,
                                const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                                c10::string_view reset, double v_reset, bool detach_reset,
                                c10::string_view surrogate, double surrogate_param, bool save_membrane) {
  SpikeEvents events;
  const LIFForwardResult forward =
      lif_forward(x, beta, alpha, threshold, u0, std::string(reset), v_reset, detach_reset,
                  std::string(surrogate), surrogate_param, save_membrane, kernel, &events, event_kernels);
  return events_result(forward, save_membrane, events);
}

// lif_events of the current event_linear(offsets, indices, weight_t, bias) viewed as
// [T, B, out]: the forward of snnfast.nn.LinearLIF on events. Where kernel_takes_events the LIF
// kernel computes each step's current from the events itself (the CPU's, LIFParams::
// current_offsets): the current never goes to memory, which saves a write and a read of
// [T, B, out] beside the kernel's one write of the spikes. Otherwise the glue runs the device's
// event_linear, then lif_events with its event kernels (csrc/event_linear.cpp).
LIFEventsResult event_linear_lif(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                                 const std::optional<at::Tensor>& bias, int64_t T, int64_t B,
                                 const at::Tensor& beta, const at::Tensor& alpha, const at::Tensor& threshold,
                                 const std::optional<at::Tensor>& u0, const std::string& reset, double v_reset,
                                 bool detach_reset, const std::string& surrogate, double surrogate_param,
                                 bool save_membrane, LIFKernel kernel, const EventKernels& event_kernels,
                                 bool kernel_takes_events);

template <LIFKernel kernel, const EventKernels* event_kernels, bool kernel_takes_events>
LIFEventsResult event_linear_lif_with(const at::Tensor& offsets, const at::Tensor& indices,
                                      const at::Tensor& weight_t, const std::optional<at::Tensor>& bias, int64_t T,
                                      int64_t B, const at::Tensor& beta, const at::Tensor& alpha,
                                      const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                                      c10::string_view reset, double v_reset, bool detach_reset,
                                      c10::string_view surrogate, double surrogate_param, bool save_membrane) {
  return event_linear_lif(offsets, indices, weight_t, bias, T, B, beta, alpha, threshold, u0, std::string(reset),
                          v_reset, detach_reset, std::string(surrogate), surrogate_param, save_membrane, kernel,
                          *event_kernels, kernel_takes_events);
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
