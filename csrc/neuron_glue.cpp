// Glue shared by the fused neuron ops; see neuron_glue.h.
#include "neuron_glue.h"

#include <cstdlib>
#include <limits>
#include <vector>

#include "output_cache.h"

namespace snnfast {
namespace {

// Tests set SNNFAST_POISON=1 to have every output filled with NaN before a kernel runs,
// so that an element the kernel forgot to write cannot pass for a result.
bool poison_outputs() {
  const char* flag = std::getenv("SNNFAST_POISON");
  return flag != nullptr && flag[0] == '1';
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

// The N values of a parameter, one per neuron, in the arithmetic dtype on x's device.
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

}  // namespace

at::ScalarType acc_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = output_cache::empty(sizes, options);
  if (poison_outputs()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

void check_same_device(const at::Tensor& x, const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device() == x.device() || is_host_scalar(t), "snnfast.lif: ", name, " is on ",
              t.device(), " but x is on ", x.device());
}

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

}  // namespace snnfast
