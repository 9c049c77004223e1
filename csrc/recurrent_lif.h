// The glue of the fused recurrent LIF op (snnfast::recurrent_lif), shared by every device.
// It owns the time loop: per step one GEMM through ATen (on whatever device the tensors
// are) and one call of the device's fused neuron step. A device may instead run the whole
// sequence in one launch (the CUDA persistent kernel), and say so by returning true.
//
// The rows of the batch are independent sequences (V mixes neurons, never samples), so the
// loop can run on any block of rows on its own: on the CPU each thread runs the whole time
// loop for its block, with single-threaded GEMMs, and the threads never wait on each other
// before the end, instead of meeting at a barrier in every GEMM and every step.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/FunctionRef.h>

#include <array>
#include <optional>
#include <string>
#include <tuple>

#include "lif.h"
#include "snnfast/recurrent.h"

namespace snnfast {

struct RecurrentKernels {
  // The neuron of step t for batch rows [row_begin, row_end), in the acc dtype: forward
  // reads x_t and p.recurrent and writes h_t, o_t (and u_T at the last step); backward
  // reads p.grad_recurrent and writes g_I_t.
  void (*forward_step)(const RecurrentLIFParams&, int64_t t, int64_t row_begin,
                       int64_t row_end, at::ScalarType acc);
  void (*backward_step)(const RecurrentLIFParams&, int64_t t, int64_t row_begin,
                        int64_t row_end, at::ScalarType acc);
  // All T steps at once where the device can (null or false: the glue runs the steps).
  bool (*forward_sequence)(const RecurrentLIFParams&, at::ScalarType acc);
  bool (*backward_sequence)(const RecurrentLIFParams&, at::ScalarType acc);
  // Whether the glue runs blocks of rows on the CPU's threads (at::parallel_for), each
  // with its own time loop; otherwise one loop over all rows (a GPU parallelises inside).
  bool rows_on_threads;
  // Where forward_step also emits the events of the spikes it computes (the CPU's, while a
  // step's spikes are in L1): runs the glue's time loop `steps` with p.step_events pointing
  // to the lists forward_step writes them into, then fills the SpikeEvents p.events points
  // to. Null: the steps emit none, and the glue converts the spikes instead
  // (recurrent_lif_events_with).
  void (*forward_emitting)(RecurrentLIFParams& p, c10::function_ref<void()> steps) = nullptr;
};

using RecurrentForwardResult = std::tuple<at::Tensor, at::Tensor, at::Tensor>;
using RecurrentInferenceResult = std::tuple<at::Tensor, at::Tensor>;
using RecurrentBackwardResult =
    std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

RecurrentForwardResult recurrent_lif_forward(
    const at::Tensor& x, const at::Tensor& V, const at::Tensor& beta, const at::Tensor& alpha,
    const at::Tensor& threshold, const std::optional<at::Tensor>& u0, const std::string& reset,
    double v_reset, bool detach_reset, const std::string& surrogate, double surrogate_param,
    bool save_membrane, const RecurrentKernels& kernels, SpikeEvents* events = nullptr,
    const EventKernels* event_kernels = nullptr);

RecurrentBackwardResult recurrent_lif_backward(
    const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_membrane,
    const std::optional<at::Tensor>& grad_u_last, const std::optional<at::Tensor>& spikes,
    const at::Tensor& membrane, const std::optional<at::Tensor>& x, const at::Tensor& V,
    const at::Tensor& beta, const at::Tensor& alpha, const at::Tensor& threshold,
    const std::optional<at::Tensor>& u0, const std::string& reset, double v_reset,
    bool detach_reset, const std::string& surrogate, double surrogate_param,
    bool detach_recurrent, std::array<bool, 6> output_mask, const RecurrentKernels& kernels);

// The signatures of the registered ops, bound to one device's kernels.
template <const RecurrentKernels* kernels>
RecurrentForwardResult recurrent_lif_forward_with(
    const at::Tensor& x, const at::Tensor& V, const at::Tensor& beta, const at::Tensor& alpha,
    const at::Tensor& threshold, const std::optional<at::Tensor>& u0, c10::string_view reset,
    double v_reset, bool detach_reset, c10::string_view surrogate, double surrogate_param,
    bool /*detach_recurrent: the backward pass's*/) {
  return recurrent_lif_forward(x, V, beta, alpha, threshold, u0, std::string(reset), v_reset,
                               detach_reset, std::string(surrogate), surrogate_param,
                               /*save_membrane=*/true, *kernels);
}

// The inference op: the forward without the membrane trace.
template <const RecurrentKernels* kernels>
RecurrentInferenceResult recurrent_lif_inference_with(
    const at::Tensor& x, const at::Tensor& V, const at::Tensor& beta, const at::Tensor& alpha,
    const at::Tensor& threshold, const std::optional<at::Tensor>& u0, c10::string_view reset,
    double v_reset, bool detach_reset, c10::string_view surrogate, double surrogate_param,
    bool /*detach_recurrent*/) {
  const auto [spikes, membrane, u_last] = recurrent_lif_forward(
      x, V, beta, alpha, threshold, u0, std::string(reset), v_reset, detach_reset,
      std::string(surrogate), surrogate_param, /*save_membrane=*/false, *kernels);
  return {spikes, u_last};
}

// The forward op that also returns the spikes as events (SpikeEvents, in rows t * B + b),
// with the membrane trace where save_membrane (else an empty tensor in its place), as
// lif_events_with (csrc/lif.h) does for lif. Where event_kernels is null the device's
// forward_step emits the events (RecurrentKernels::forward_emitting, the CPU's: a thread owns
// whole rows of the batch for the whole loop); otherwise the glue converts the spikes with
// the device's event kernels (CUDA: its step kernels spread a row over threads and blocks).
template <const RecurrentKernels* kernels, const EventKernels* event_kernels = nullptr>
LIFEventsResult recurrent_lif_events_with(
    const at::Tensor& x, const at::Tensor& V, const at::Tensor& beta, const at::Tensor& alpha,
    const at::Tensor& threshold, const std::optional<at::Tensor>& u0, c10::string_view reset,
    double v_reset, bool detach_reset, c10::string_view surrogate, double surrogate_param,
    bool /*detach_recurrent*/, bool save_membrane) {
  SpikeEvents events;
  const RecurrentForwardResult forward = recurrent_lif_forward(
      x, V, beta, alpha, threshold, u0, std::string(reset), v_reset, detach_reset,
      std::string(surrogate), surrogate_param, save_membrane, *kernels, &events, event_kernels);
  return events_result(forward, save_membrane, events);
}

template <const RecurrentKernels* kernels>
RecurrentBackwardResult recurrent_lif_backward_with(
    const at::Tensor& grad_spikes, const std::optional<at::Tensor>& grad_membrane,
    const std::optional<at::Tensor>& grad_u_last, const std::optional<at::Tensor>& spikes,
    const at::Tensor& membrane, const std::optional<at::Tensor>& x, const at::Tensor& V,
    const at::Tensor& beta, const at::Tensor& alpha, const at::Tensor& threshold,
    const std::optional<at::Tensor>& u0, c10::string_view reset, double v_reset,
    bool detach_reset, c10::string_view surrogate, double surrogate_param,
    bool detach_recurrent, std::array<bool, 6> output_mask) {
  return recurrent_lif_backward(grad_spikes, grad_membrane, grad_u_last, spikes, membrane, x, V,
                                beta, alpha, threshold, u0, std::string(reset), v_reset,
                                detach_reset, std::string(surrogate), surrogate_param,
                                detach_recurrent, output_mask, *kernels);
}

}  // namespace snnfast
