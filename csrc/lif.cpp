// Schemas of the fused LIF ops and the device-independent glue behind them.
#include "lif.h"

#include <torch/library.h>

#include <cstdlib>
#include <vector>

namespace snnfast {
namespace {

at::ScalarType acc_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

// Tests set SNNFAST_POISON=1 to have every output filled with NaN before a kernel runs,
// so that an element the kernel forgot to write cannot pass for a result.
bool poison_outputs() {
  const char* flag = std::getenv("SNNFAST_POISON");
  return flag != nullptr && flag[0] == '1';
}

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  if (poison_outputs()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

enum class ParamShape { Layer, Channel, Neuron };

// beta, alpha and threshold are per layer (one value), per channel (F[0] values) or per
// neuron (shape F), as neuron-spec.md defines.
ParamShape param_shape(const at::Tensor& param, at::IntArrayRef F, const char* name) {
  if (param.numel() == 1 && param.dim() <= 1) return ParamShape::Layer;
  if (param.sizes() == F) return ParamShape::Neuron;
  if (param.dim() == 1 && param.size(0) == F[0]) return ParamShape::Channel;
  TORCH_CHECK(false, "snnfast.lif: ", name, " has shape ", param.sizes(),
              "; expected a single value, a per-channel (", F[0], ",) tensor or a per-neuron ",
              F, " tensor for input neurons of shape ", F);
}

// A 0-d CPU tensor is a scalar for any device, as in torch's own ops: a float parameter
// then needs no copy to the GPU (and no synchronisation) on every call.
bool is_host_scalar(const at::Tensor& t) { return t.dim() == 0 && t.is_cpu(); }

void check_same_device(const at::Tensor& x, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == x.device() || is_host_scalar(t), "snnfast.lif: ", name, " is on ",
              t.device(), " but x is on ", x.device());
}

at::IntArrayRef neuron_shape(const at::Tensor& x) { return x.sizes().slice(2); }

void check_input(const at::Tensor& x) {
  TORCH_CHECK(x.dim() >= 3, "snnfast.lif: x must be [T, B, *F] with at least one neuron dimension, got shape ",
              x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "snnfast.lif: x must be floating point, got ", x.scalar_type());
}

// The N values of a parameter, one per neuron, in the arithmetic dtype.
at::Tensor per_neuron(const at::Tensor& param, at::IntArrayRef F, const at::TensorOptions& acc,
                      const char* name) {
  if (is_host_scalar(param) && !acc.device().is_cpu())
    return at::full({c10::multiply_integers(F)}, param.item<double>(), acc);
  at::Tensor p = param.to(acc.dtype().toScalarType());
  switch (param_shape(param, F, name)) {
    case ParamShape::Layer:
      p = p.reshape({}).expand(F);
      break;
    case ParamShape::Channel: {
      std::vector<int64_t> channel_view(F.size(), 1);
      channel_view[0] = F[0];
      p = p.view(channel_view).expand(F);
      break;
    }
    case ParamShape::Neuron:
      break;
  }
  return p.contiguous().view(-1);
}

// The gradient of a parameter from the kernel's [B, N] partial sums: summed over the batch
// and the neurons that share the parameter.
at::Tensor reduce_to_param(const at::Tensor& partial, const at::Tensor& param,
                           at::IntArrayRef F) {
  at::Tensor g;
  switch (param_shape(param, F, "parameter")) {
    case ParamShape::Layer:
      g = partial.sum().reshape(param.sizes());
      break;
    case ParamShape::Channel:
      g = partial.view({partial.size(0), F[0], -1}).sum({0, 2});
      break;
    case ParamShape::Neuron:
      g = partial.sum(0).view(F);
      break;
  }
  return g.to(param.options());
}

// u0 is broadcast to [B, *F] the way torch broadcasts; one shared by the whole batch (the
// learnable IMP) is kept at N values with a batch stride of 0.
struct InitialState {
  at::Tensor values;
  int64_t batch_stride;
};

InitialState initial_state(const std::optional<at::Tensor>& u0, int64_t B, at::IntArrayRef F,
                           const at::Tensor& x, at::ScalarType acc) {
  const int64_t N = c10::multiply_integers(F);
  if (!u0.has_value()) return {at::zeros({N}, x.options().dtype(acc)), 0};
  check_same_device(x, *u0, "u0");
  if (is_host_scalar(*u0) && !x.is_cpu())
    return {at::full({N}, u0->item<double>(), x.options().dtype(acc)), 0};
  std::vector<int64_t> state_shape{B};
  state_shape.insert(state_shape.end(), F.begin(), F.end());
  TORCH_CHECK(u0->dim() <= static_cast<int64_t>(state_shape.size()) &&
                  at::is_expandable_to(u0->sizes(), state_shape),
              "snnfast.lif: u0 has shape ", u0->sizes(),
              ", which does not broadcast to the state shape [B, *F] = ", at::IntArrayRef(state_shape));
  const bool per_sample = u0->dim() == static_cast<int64_t>(state_shape.size()) && u0->size(0) != 1;
  at::Tensor u = u0->to(acc);
  if (per_sample) return {u.expand(state_shape).contiguous().view(-1), N};
  if (u.dim() == static_cast<int64_t>(state_shape.size())) u = u.squeeze(0);
  return {u.expand(F).contiguous().view(-1), 0};
}

struct NeuronParams {
  at::Tensor beta, alpha, threshold;
  InitialState u0;
};

NeuronParams neuron_params(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& alpha,
                           const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                           int64_t B) {
  const at::IntArrayRef F = neuron_shape(x);
  const at::ScalarType acc = acc_type(x.scalar_type());
  check_same_device(x, beta, "beta");
  check_same_device(x, alpha, "alpha");
  check_same_device(x, threshold, "threshold");
  const auto acc_options = x.options().dtype(acc);
  return {per_neuron(beta, F, acc_options, "beta"), per_neuron(alpha, F, acc_options, "alpha"),
          per_neuron(threshold, F, acc_options, "threshold"), initial_state(u0, B, F, x, acc)};
}

// The forward pass checks the surrogate too, so that a bad one fails before the backward pass.
void check_surrogate(const std::string& surrogate, double surrogate_param) {
  parse_surrogate(surrogate);
  TORCH_CHECK(surrogate_param > 0, "snnfast.lif: the surrogate's width or sharpness must be positive, got ",
              surrogate_param);
}

void fill_neuron(LIFParams& p, const NeuronParams& np, const std::string& reset, double v_reset,
                 bool detach_reset) {
  p.reset = parse_reset(reset);
  p.v_reset = v_reset;
  p.detach_reset = detach_reset;
  p.beta = np.beta.data_ptr();
  p.alpha = np.alpha.data_ptr();
  p.threshold = np.threshold.data_ptr();
  p.u0 = np.u0.values.data_ptr();
  p.u0_batch_stride = np.u0.batch_stride;
}

}  // namespace

Reset parse_reset(const std::string& reset) {
  if (reset == "hard") return Reset::Hard;
  if (reset == "soft") return Reset::Soft;
  if (reset == "none") return Reset::None;
  TORCH_CHECK(false, "snnfast.lif: reset must be 'hard', 'soft' or 'none', got '", reset, "'");
}

Surrogate parse_surrogate(const std::string& surrogate) {
  if (surrogate == "rectangle") return Surrogate::Rectangle;
  if (surrogate == "triangle") return Surrogate::Triangle;
  if (surrogate == "sigmoid") return Surrogate::Sigmoid;
  if (surrogate == "atan") return Surrogate::ATan;
  TORCH_CHECK(false, "snnfast.lif: surrogate must be 'rectangle', 'triangle', 'sigmoid' or 'atan', got '",
              surrogate, "'");
}

LIFForwardResult lif_forward(const at::Tensor& x_in, const at::Tensor& beta,
                             const at::Tensor& alpha, const at::Tensor& threshold,
                             const std::optional<at::Tensor>& u0, const std::string& reset,
                             double v_reset, bool detach_reset, const std::string& surrogate,
                             double surrogate_param, LIFKernel kernel) {
  check_input(x_in);
  check_surrogate(surrogate, surrogate_param);
  // A device kernel launches on the current device and stream: make them x's.
  const at::DeviceGuard device_guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t T = x.size(0), B = x.size(1);
  const at::IntArrayRef F = neuron_shape(x);
  const NeuronParams np = neuron_params(x, beta, alpha, threshold, u0, B);
  const auto acc_options = x.options().dtype(acc_type(x.scalar_type()));

  at::Tensor spikes = new_output(x.sizes(), x.options());
  at::Tensor membrane = new_output(x.sizes(), acc_options);
  at::Tensor u_last = new_output(x.sizes().slice(1), acc_options);

  LIFParams p;
  p.T = T;
  p.B = B;
  p.N = c10::multiply_integers(F);
  fill_neuron(p, np, reset, v_reset, detach_reset);
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
  TORCH_CHECK(membrane.is_contiguous() && membrane.dim() >= 3,
              "snnfast.lif_backward: membrane must be the contiguous [T, B, *F] trace of the forward pass");
  const at::DeviceGuard device_guard(membrane.device());
  const int64_t T = membrane.size(0), B = membrane.size(1);
  const at::IntArrayRef F = neuron_shape(membrane);
  const at::ScalarType dtype = grad_spikes_in.scalar_type();
  const at::ScalarType acc = membrane.scalar_type();
  TORCH_CHECK(acc == acc_type(dtype), "snnfast.lif_backward: membrane is ", acc,
              " but grad_spikes is ", dtype);
  TORCH_CHECK(grad_spikes_in.sizes() == membrane.sizes(),
              "snnfast.lif_backward: grad_spikes has shape ", grad_spikes_in.sizes(),
              ", expected ", membrane.sizes());
  const bool need_x = output_mask[0], need_beta = output_mask[1], need_alpha = output_mask[2],
             need_threshold = output_mask[3], need_u0 = output_mask[4] && u0.has_value();
  TORCH_CHECK(!need_alpha || x_in.has_value(),
              "snnfast.lif_backward: the gradient of alpha needs the input x");
  check_surrogate(surrogate, surrogate_param);

  const NeuronParams np = neuron_params(membrane, beta, alpha, threshold, u0, B);
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
  fill_neuron(p, np, reset, v_reset, detach_reset);
  p.surrogate = parse_surrogate(surrogate);
  p.surrogate_param = surrogate_param;
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

TORCH_LIBRARY(snnfast, m) {
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
