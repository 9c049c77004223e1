// Schemas of the fused LIF ops and the device-independent glue behind them.
#include "lif.h"

#include "neuron_glue.h"
#include "op_library.h"

namespace snnfast {

LIFForwardResult lif_forward(const at::Tensor& x_in, const at::Tensor& beta,
                             const at::Tensor& alpha, const at::Tensor& threshold,
                             const std::optional<at::Tensor>& u0, const std::string& reset,
                             double v_reset, bool detach_reset, const std::string& surrogate,
                             double surrogate_param, LIFKernel kernel) {
  constexpr const char* op = "snnfast.lif";
  check_input(op, x_in, SequenceShape::TBF);
  const NeuronOptions neuron =
      neuron_options(op, reset, v_reset, detach_reset, surrogate, surrogate_param);
  // A device kernel launches on the current device and stream: make them x's.
  const at::DeviceGuard device_guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1);
  const at::IntArrayRef F = neuron_shape(x);
  const NeuronParams np = neuron_params(op, x, beta, alpha, threshold, u0, B);
  const auto acc_options = x.options().dtype(acc_type(x.scalar_type()));

  at::Tensor spikes = new_output(x.sizes(), x.options());
  at::Tensor membrane = new_output(x.sizes(), acc_options);
  at::Tensor u_last = new_output(x.sizes().slice(1), acc_options);

  LIFParams p;
  p.T = T;
  p.B = B;
  p.N = c10::multiply_integers(F);
  fill_neuron(p, np, neuron);
  p.x = x.data_ptr();
  p.spikes = spikes.data_ptr();
  p.membrane = membrane.data_ptr();
  p.u_last = u_last.data_ptr();
  if (B * p.N > 0) kernel(p, x.scalar_type());
  return {spikes, membrane, u_last};
}

LIFBackwardResult lif_backward(const at::Tensor& grad_spikes_in,
                               const std::optional<at::Tensor>& grad_membrane_in,
                               const std::optional<at::Tensor>& grad_u_last_in,
                               const at::Tensor& membrane, const std::optional<at::Tensor>& x_in,
                               const at::Tensor& beta, const at::Tensor& alpha,
                               const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                               const std::string& reset, double v_reset, bool detach_reset,
                               const std::string& surrogate, double surrogate_param,
                               std::array<bool, 5> output_mask, LIFKernel kernel) {
  constexpr const char* op = "snnfast.lif_backward";
  const bool need_x = output_mask[0], need_beta = output_mask[1], need_alpha = output_mask[2],
             need_threshold = output_mask[3], need_u0 = output_mask[4] && u0.has_value();
  const at::ScalarType dtype = grad_spikes_in.scalar_type();
  check_membrane(op, membrane, grad_spikes_in, SequenceShape::TBF);
  check_like(op, "grad_spikes", grad_spikes_in, membrane.sizes(), "membrane's", membrane);
  check_like(op, "grad_membrane", grad_membrane_in, membrane.sizes(), "membrane's", membrane);
  check_like(op, "grad_u_last", grad_u_last_in, membrane.sizes().slice(1), "the state's", membrane);
  check_like(op, "x", x_in, membrane.sizes(), "membrane's", membrane, dtype);
  check_given(op, "x", x_in, need_alpha, "the gradient of alpha");
  const NeuronOptions neuron =
      neuron_options(op, reset, v_reset, detach_reset, surrogate, surrogate_param);
  const at::DeviceGuard device_guard(membrane.device());
  const int64_t T = membrane.size(0), B = membrane.size(1);
  const at::IntArrayRef F = neuron_shape(membrane);
  const at::ScalarType acc = membrane.scalar_type();
  const NeuronParams np = neuron_params(op, membrane, beta, alpha, threshold, u0, B);
  const at::Tensor grad_spikes = grad_spikes_in.contiguous();
  at::Tensor grad_membrane, grad_u_last, x;
  if (grad_membrane_in.has_value()) grad_membrane = grad_membrane_in->to(acc).contiguous();
  if (grad_u_last_in.has_value()) grad_u_last = grad_u_last_in->to(acc).contiguous();
  if (need_alpha) x = x_in->contiguous();

  const auto options = membrane.options();
  at::Tensor grad_x = need_x ? new_output(membrane.sizes(), options.dtype(dtype)) : at::Tensor();
  auto partial = [&](bool needed) {
    return needed ? new_output({B, c10::multiply_integers(F)}, options) : at::Tensor();
  };
  at::Tensor grad_beta = partial(need_beta), grad_alpha = partial(need_alpha),
             grad_threshold = partial(need_threshold), grad_u0 = partial(need_u0);

  LIFParams p;
  p.T = T;
  p.B = B;
  p.N = c10::multiply_integers(F);
  fill_neuron(p, np, neuron);
  p.membrane = membrane.data_ptr();
  p.x = need_alpha ? x.data_ptr() : nullptr;
  p.grad_spikes = grad_spikes.data_ptr();
  p.grad_membrane = grad_membrane.defined() ? grad_membrane.data_ptr() : nullptr;
  p.grad_u_last = grad_u_last.defined() ? grad_u_last.data_ptr() : nullptr;
  auto ptr = [](at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; };
  p.grad_x = ptr(grad_x);
  p.grad_beta = ptr(grad_beta);
  p.grad_alpha = ptr(grad_alpha);
  p.grad_threshold = ptr(grad_threshold);
  p.grad_u0 = ptr(grad_u0);
  if (B * p.N > 0) {
    kernel(p, dtype);
  } else {
    for (at::Tensor* g : {&grad_beta, &grad_alpha, &grad_threshold, &grad_u0})
      if (g->defined()) g->zero_();
  }

  auto empty = [&] { return at::empty({0}, options); };
  return {need_x ? grad_x : empty(),
          need_beta ? reduce_to_param(grad_beta, beta, F) : empty(),
          need_alpha ? reduce_to_param(grad_alpha, alpha, F) : empty(),
          need_threshold ? reduce_to_param(grad_threshold, threshold, F) : empty(),
          need_u0 ? grad_u0.view(membrane.sizes().slice(1)).sum_to_size(u0->sizes()).to(u0->options())
                  : empty()};
}

SNNFAST_LIBRARY(m) {
  m.def(
      "lif(Tensor x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, str reset, "
      "float v_reset, bool detach_reset, str surrogate, float surrogate_param) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last)");
  m.def(
      "lif_backward(Tensor grad_spikes, Tensor? grad_membrane, Tensor? grad_u_last, "
      "Tensor membrane, Tensor? x, Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, "
      "str reset, float v_reset, bool detach_reset, str surrogate, float surrogate_param, "
      "bool[5] output_mask) -> (Tensor grad_x, Tensor grad_beta, Tensor grad_alpha, "
      "Tensor grad_threshold, Tensor grad_u0)");
}

}  // namespace snnfast
