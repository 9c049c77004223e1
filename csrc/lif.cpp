// Schemas of the fused LIF ops and the device-independent glue behind them.
#include "lif.h"

#include "event_linear.h"
#include "neuron_glue.h"
#include "op_library.h"

namespace snnfast {

LIFForwardResult lif_forward(const at::Tensor& x_in, const at::Tensor& beta,
                             const at::Tensor& alpha, const at::Tensor& threshold,
                             const std::optional<at::Tensor>& u0, const std::string& reset,
                             double v_reset, bool detach_reset, const std::string& surrogate,
                             double surrogate_param, bool save_membrane, LIFKernel kernel,
                             SpikeEvents* events, const EventKernels* event_kernels,
                             const EventCurrent* current) {
  const char* op = current != nullptr ? "snnfast.event_linear_lif"
                   : events != nullptr ? "snnfast.lif_events"
                                       : (save_membrane ? "snnfast.lif" : "snnfast.lif_inference");
  check_input(op, x_in, SequenceShape::TBF);
  // A device kernel launches on the current device and stream: make them x's.
  const at::DeviceGuard device_guard(x_in.device());
  const at::Tensor x = current != nullptr ? x_in : x_in.contiguous();  // a shape only: not copied
  const Neuron neuron = neuron_args(op, x, beta, alpha, threshold, u0, reset, v_reset,
                                    detach_reset, surrogate, surrogate_param);
  const auto acc_options = x.options().dtype(acc_type(x.scalar_type()));
  at::Tensor spikes = new_output(x.sizes(), x.options());
  at::Tensor membrane = save_membrane ? new_output(x.sizes(), acc_options) : at::Tensor();
  at::Tensor u_last = new_output(x.sizes().slice(1), acc_options);

  LIFParams p;
  set_params_fwd(p, neuron, x, current != nullptr ? at::Tensor() : x, spikes, membrane, u_last);
  if (current != nullptr) {
    p.current_offsets = current->offsets.data_ptr<int64_t>();
    p.current_indices = current->indices.data_ptr<int32_t>();
    p.weight_t = current->weight_t.data_ptr();
    p.bias = ptr(current->bias);
  }
  if (events != nullptr && event_kernels == nullptr) {
    events->offsets = new_index_output({p.T * p.B + 1}, x.options().dtype(at::kLong));
    p.events = events;
  }
  if (p.B * p.N > 0) kernel(p, x.scalar_type());
  finish_spike_events(events, event_kernels, spikes.view({p.T * p.B, p.N}));
  return {spikes, membrane, u_last};
}

void finish_spike_events(SpikeEvents* events, const EventKernels* event_kernels, const at::Tensor& spike_rows) {
  if (events == nullptr) return;
  if (event_kernels != nullptr) {
    std::tie(events->offsets, events->indices) = spikes_to_events(spike_rows, /*check_binary=*/false, *event_kernels);
  } else if (!events->indices.defined()) {  // the offsets were allocated for the kernel to fill
    events->offsets.zero_();
    events->indices = new_index_output({0}, spike_rows.options().dtype(at::kInt));
  }
}

LIFBackwardResult lif_backward(const at::Tensor& grad_spikes_in,
                               const std::optional<at::Tensor>& grad_membrane,
                               const std::optional<at::Tensor>& grad_u_last,
                               const at::Tensor& membrane, const std::optional<at::Tensor>& x,
                               const at::Tensor& beta, const at::Tensor& alpha,
                               const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                               const std::string& reset, double v_reset, bool detach_reset,
                               const std::string& surrogate, double surrogate_param,
                               std::array<bool, 5> output_mask, LIFKernel kernel) {
  constexpr const char* op = "snnfast.lif_backward";
  const bool need_x = output_mask[0], need_beta = output_mask[1], need_alpha = output_mask[2],
             need_threshold = output_mask[3], need_u0 = output_mask[4] && u0.has_value();
  const at::ScalarType dtype = grad_spikes_in.scalar_type();
  check_saved_trace(op, membrane, SequenceShape::TBF, grad_spikes_in, grad_membrane, grad_u_last,
                    x, need_alpha);
  const at::DeviceGuard device_guard(membrane.device());
  const Neuron neuron = neuron_args(op, membrane, beta, alpha, threshold, u0, reset, v_reset,
                                    detach_reset, surrogate, surrogate_param);
  const int64_t B = membrane.size(1);
  const at::IntArrayRef F = neuron_shape(membrane);
  const at::ScalarType acc = membrane.scalar_type();
  const auto options = membrane.options();
  at::Tensor grad_x = need_x ? new_output(membrane.sizes(), options.dtype(dtype)) : at::Tensor();
  auto partial = [&](bool needed) {
    return needed ? new_output({B, c10::multiply_integers(F)}, options) : at::Tensor();
  };
  const ParamPartials partials{partial(need_beta), partial(need_alpha), partial(need_threshold),
                               partial(need_u0)};

  // Named, so that they outlive the kernel that reads their pointers.
  const at::Tensor grad_spikes = grad_spikes_in.contiguous();
  const at::Tensor grad_membrane_acc = contiguous_or_undefined(grad_membrane, acc);
  const at::Tensor grad_u_last_acc = contiguous_or_undefined(grad_u_last, acc);
  const at::Tensor x_alpha = need_alpha ? x->contiguous() : at::Tensor();

  LIFParams p;
  set_params_bwd(p, neuron, membrane, x_alpha, grad_spikes, grad_membrane_acc, grad_u_last_acc,
                 grad_x, partials);
  if (p.B * p.N > 0) {
    kernel(p, dtype);
  } else {
    for (const at::Tensor& g : {partials.beta, partials.alpha, partials.threshold, partials.u0})
      if (g.defined()) g.zero_();
  }
  return {need_x ? grad_x : no_gradient(membrane),
          need_beta ? reduce_to_param(partials.beta, beta, F) : no_gradient(membrane),
          need_alpha ? reduce_to_param(partials.alpha, alpha, F) : no_gradient(membrane),
          need_threshold ? reduce_to_param(partials.threshold, threshold, F) : no_gradient(membrane),
          need_u0 ? reduce_to_u0(partials.u0, *u0, membrane.sizes().slice(1)) : no_gradient(membrane)};
}

SNNFAST_LIBRARY(m) {
  m.def(
      "lif(Tensor x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, str reset, "
      "float v_reset, bool detach_reset, str surrogate, float surrogate_param) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last)");
  // lif without the membrane trace, where no gradient can be asked for (snnfast/ops/_fused.py).
  m.def(
      "lif_inference(Tensor x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, "
      "str reset, float v_reset, bool detach_reset, str surrogate, float surrogate_param) -> "
      "(Tensor spikes, Tensor u_last)");
  // lif with its spikes also as events (csrc/lif.h SpikeEvents), and the membrane trace only
  // where save_membrane (an empty tensor otherwise); on the CPU and CUDA. Its autograd
  // (snnfast/ops/_fused.py) is lif's, through lif_backward, where save_membrane.
  m.def(
      "lif_events(Tensor x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, str reset, "
      "float v_reset, bool detach_reset, str surrogate, float surrogate_param, bool save_membrane) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last, Tensor offsets, Tensor indices)");
  m.def(
      "lif_backward(Tensor grad_spikes, Tensor? grad_membrane, Tensor? grad_u_last, "
      "Tensor membrane, Tensor? x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, "
      "str reset, float v_reset, bool detach_reset, str surrogate, float surrogate_param, "
      "bool[5] output_mask) -> (Tensor grad_x, Tensor grad_beta, Tensor grad_alpha, "
      "Tensor grad_threshold, Tensor grad_u0)");
}

}  // namespace snnfast
