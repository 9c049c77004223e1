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

// A 0-d CPU tensor is a scalar for any device, as in torch's own ops: a float parameter
// then needs no copy to the GPU (and no synchronisation) on every call.
bool is_host_scalar(const at::Tensor& t) { return t.dim() == 0 && t.is_cpu(); }

// like: the op's sequence (x, or membrane in a backward op), which fixes the device it runs on.
void check_device(const char* op, const char* name, const at::Tensor& t, const at::Tensor& like) {
  TORCH_CHECK(t.device() == like.device(), op, ": ", name, " is on ", t.device(),
              " but the op runs on ", like.device(), " (its sequence's device)");
}

void check_floating(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), op, ": ", name,
              " must be floating point, got ", t.scalar_type());
}

// beta, alpha, threshold and u0 may also be integers, as the Python layer allows.
void check_real(const char* op, const char* name, const at::Tensor& t, const at::Tensor& x) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()) ||
                  at::isIntegralType(t.scalar_type(), /*includeBool=*/false),
              op, ": ", name, " must be a real number (floating point or integer), got ",
              t.scalar_type());
  TORCH_CHECK(is_host_scalar(t) || t.device() == x.device(), op, ": ", name, " is on ",
              t.device(), " but the op runs on ", x.device(),
              " (its sequence's device); give it there, or as a 0-d CPU tensor (a scalar)");
}

const char* sequence_layout(SequenceShape shape) {
  return shape == SequenceShape::TBN ? "[T, B, N]" : "[T, B, *F] with at least one neuron dimension";
}

bool has_layout(const at::Tensor& t, SequenceShape shape) {
  return shape == SequenceShape::TBN ? t.dim() == 3 : t.dim() >= 3;
}

enum class ParamShape { Layer, Channel, Neuron };

// beta, alpha and threshold are per layer (one value), per channel (F[0] values) or per
// neuron (shape F), as docs/neuron.md defines; nullopt for any other shape.
std::optional<ParamShape> param_shape(const at::Tensor& param, at::IntArrayRef F) {
  if (param.numel() == 1 && param.dim() <= 1) return ParamShape::Layer;
  if (param.sizes() == F) return ParamShape::Neuron;
  if (param.dim() == 1 && param.size(0) == F[0]) return ParamShape::Channel;
  return std::nullopt;
}

ParamShape checked_param_shape(const char* op, const char* name, const at::Tensor& param,
                               const at::Tensor& x) {
  check_real(op, name, param, x);
  const at::IntArrayRef F = neuron_shape(x);
  const std::optional<ParamShape> shape = param_shape(param, F);
  TORCH_CHECK(shape.has_value(), op, ": ", name, " has shape ", param.sizes(),
              "; expected a single value, a per-channel (", F[0], ",) tensor or a per-neuron ",
              F, " tensor for input neurons of shape ", F);
  return *shape;
}

// A parameter's values in the arithmetic dtype on x's device: one per neuron, or a single one
// (stride 0) for a per-layer value.
PerNeuron per_neuron(const char* op, const char* name, const at::Tensor& param,
                     const at::Tensor& x) {
  const ParamShape shape = checked_param_shape(op, name, param, x);
  const at::IntArrayRef F = neuron_shape(x);
  const auto acc = x.options().dtype(acc_type(x.scalar_type()));
  if (is_host_scalar(param) && !x.is_cpu()) return {at::full({1}, param.item<double>(), acc), 0};
  at::Tensor p = param.to(acc.dtype().toScalarType());
  switch (shape) {
    case ParamShape::Layer:
      return {p.reshape({1}).contiguous(), 0};
    case ParamShape::Channel: {
      std::vector<int64_t> channel_view(F.size(), 1);
      channel_view[0] = F[0];
      p = p.view(channel_view).expand(F);
      break;
    }
    case ParamShape::Neuron:
      break;
  }
  return {p.contiguous().view(-1), 1};
}

InitialState initial_state(const char* op, const std::optional<at::Tensor>& u0, int64_t B,
                           const at::Tensor& x) {
  const at::IntArrayRef F = neuron_shape(x);
  const at::ScalarType acc = acc_type(x.scalar_type());
  const int64_t N = c10::multiply_integers(F);
  if (!u0.has_value()) return {at::zeros({1}, x.options().dtype(acc)), 0, 0};
  check_real(op, "u0", *u0, x);
  if (is_host_scalar(*u0) && !x.is_cpu())
    return {at::full({1}, u0->item<double>(), x.options().dtype(acc)), 0, 0};
  std::vector<int64_t> state_shape{B};
  state_shape.insert(state_shape.end(), F.begin(), F.end());
  TORCH_CHECK(u0->dim() <= static_cast<int64_t>(state_shape.size()) &&
                  at::is_expandable_to(u0->sizes(), state_shape),
              op, ": u0 has shape ", u0->sizes(),
              ", which does not broadcast to the state shape [B, *F] = ", at::IntArrayRef(state_shape));
  const bool per_sample = u0->dim() == static_cast<int64_t>(state_shape.size()) && u0->size(0) != 1;
  at::Tensor u = u0->to(acc);
  if (u.numel() == 1) return {u.reshape({1}).contiguous(), 0, 0};
  if (per_sample) return {u.expand(state_shape).contiguous().view(-1), N};
  if (u.dim() == static_cast<int64_t>(state_shape.size())) u = u.squeeze(0);
  return {u.expand(F).contiguous().view(-1), 0};
}

Reset parse_reset(const char* op, const std::string& reset) {
  if (reset == "hard") return Reset::Hard;
  if (reset == "soft") return Reset::Soft;
  if (reset == "none") return Reset::None;
  TORCH_CHECK(false, op, ": reset must be 'hard', 'soft' or 'none', got '", reset, "'");
}

Surrogate parse_surrogate(const char* op, const std::string& surrogate) {
  if (surrogate == "rectangle") return Surrogate::Rectangle;
  if (surrogate == "triangle") return Surrogate::Triangle;
  if (surrogate == "sigmoid") return Surrogate::Sigmoid;
  if (surrogate == "atan") return Surrogate::ATan;
  TORCH_CHECK(false, op, ": surrogate must be 'rectangle', 'triangle', 'sigmoid' or 'atan', got '",
              surrogate, "'");
}

}  // namespace

void check_input(const char* op, const at::Tensor& x, SequenceShape shape) {
  TORCH_CHECK(has_layout(x, shape), op, ": x must be ", sequence_layout(shape), ", got shape ",
              x.sizes());
  check_floating(op, "x", x);
}

void check_membrane(const char* op, const at::Tensor& membrane, const at::Tensor& grad_spikes,
                    SequenceShape shape) {
  TORCH_CHECK(has_layout(membrane, shape) && membrane.is_contiguous(), op,
              ": membrane must be the forward pass's trace, contiguous and ", sequence_layout(shape),
              ", got ", membrane.is_contiguous() ? "shape " : "a non-contiguous tensor of shape ",
              membrane.sizes());
  TORCH_CHECK(membrane.scalar_type() == acc_type(grad_spikes.scalar_type()), op,
              ": membrane must be ", acc_type(grad_spikes.scalar_type()),
              " (the arithmetic dtype of grad_spikes, ", grad_spikes.scalar_type(), "), got ",
              membrane.scalar_type());
}

void check_like(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape,
                const char* whose, const at::Tensor& like, std::optional<at::ScalarType> dtype) {
  TORCH_CHECK(t.sizes() == shape, op, ": ", name, " must have shape ", shape, " (", whose,
              "), got ", t.sizes());
  check_device(op, name, t, like);
  check_floating(op, name, t);
  TORCH_CHECK(!dtype.has_value() || t.scalar_type() == *dtype, op, ": ", name, " must be ",
              *dtype, " (the dtype of grad_spikes and of the forward's x), got ", t.scalar_type());
}

void check_like(const char* op, const char* name, const std::optional<at::Tensor>& t,
                at::IntArrayRef shape, const char* whose, const at::Tensor& like,
                std::optional<at::ScalarType> dtype) {
  if (t.has_value()) check_like(op, name, *t, shape, whose, like, dtype);
}

void check_given(const char* op, const char* name, const std::optional<at::Tensor>& t,
                 bool needed, const char* needed_for) {
  TORCH_CHECK(!needed || t.has_value(), op, ": ", name, " must be given for ", needed_for);
}

void check_saved_trace(const char* op, const at::Tensor& membrane, SequenceShape shape,
                       const at::Tensor& grad_spikes,
                       const std::optional<at::Tensor>& grad_membrane,
                       const std::optional<at::Tensor>& grad_u_last,
                       const std::optional<at::Tensor>& x, bool need_alpha) {
  check_membrane(op, membrane, grad_spikes, shape);
  check_like(op, "grad_spikes", grad_spikes, membrane.sizes(), "membrane's", membrane);
  check_like(op, "grad_membrane", grad_membrane, membrane.sizes(), "membrane's", membrane);
  check_like(op, "grad_u_last", grad_u_last, membrane.sizes().slice(1), "the state's", membrane);
  check_like(op, "x", x, membrane.sizes(), "membrane's", membrane, grad_spikes.scalar_type());
  check_given(op, "x", x, need_alpha, "the gradient of alpha");
}

void check_recurrent_weights(const char* op, const at::Tensor& V, const at::Tensor& sequence,
                             const char* sequence_name) {
  const int64_t N = sequence.size(2);
  TORCH_CHECK(V.dim() == 2 && V.size(0) == N && V.size(1) == N, op, ": V must be [N, N] with N = ",
              N, " (the neurons of ", sequence_name, "), got shape ", V.sizes());
  check_floating(op, "V", V);
  check_device(op, "V", V, sequence);
}

at::ScalarType acc_type(at::ScalarType dtype) {
  return dtype == at::kDouble ? at::kDouble : at::kFloat;
}

at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = output_cache::empty(sizes, options);
  if (poison_outputs()) out.fill_(std::numeric_limits<double>::quiet_NaN());
  return out;
}

at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& t, at::ScalarType dtype) {
  return t.has_value() ? t->to(dtype).contiguous() : at::Tensor();
}

at::Tensor reduce_to_u0(const at::Tensor& grad_state, const at::Tensor& u0,
                        at::IntArrayRef state_shape) {
  const at::Tensor g = grad_state.view(state_shape);
  // A u0 of as many values as the state (B = 1 with the IMP's per-neuron u0) needs no sum:
  // the view saves a copy of the whole state per call.
  if (g.numel() == u0.numel()) return g.view(u0.sizes()).to(u0.options());
  return g.sum_to_size(u0.sizes()).to(u0.options());
}

at::Tensor reduce_to_param(const at::Tensor& partial, const at::Tensor& param,
                           at::IntArrayRef F) {
  const std::optional<ParamShape> shape = param_shape(param, F);
  TORCH_INTERNAL_ASSERT(shape.has_value(), "the parameter was checked by neuron_params");
  at::Tensor g;
  switch (*shape) {
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

namespace {

NeuronParams neuron_params(const char* op, const at::Tensor& x, const at::Tensor& beta,
                           const at::Tensor& alpha, const at::Tensor& threshold,
                           const std::optional<at::Tensor>& u0, int64_t B) {
  return {per_neuron(op, "beta", beta, x), per_neuron(op, "alpha", alpha, x),
          per_neuron(op, "threshold", threshold, x), initial_state(op, u0, B, x)};
}

NeuronOptions neuron_options(const char* op, const std::string& reset, double v_reset,
                             bool detach_reset, const std::string& surrogate,
                             double surrogate_param) {
  // NaN fails the comparison too.
  TORCH_CHECK(surrogate_param > 0, op,
              ": surrogate_param (the surrogate's width or sharpness) must be positive, got ",
              surrogate_param);
  return {parse_reset(op, reset), v_reset, detach_reset, parse_surrogate(op, surrogate),
          surrogate_param};
}

}  // namespace

Neuron neuron_args(const char* op, const at::Tensor& sequence, const at::Tensor& beta,
                   const at::Tensor& alpha, const at::Tensor& threshold,
                   const std::optional<at::Tensor>& u0, const std::string& reset,
                   double v_reset, bool detach_reset, const std::string& surrogate,
                   double surrogate_param) {
  // The options first: a bad reset or surrogate fails before any tensor is made.
  NeuronOptions options =
      neuron_options(op, reset, v_reset, detach_reset, surrogate, surrogate_param);
  return {options, neuron_params(op, sequence, beta, alpha, threshold, u0, sequence.size(1))};
}

void set_params_fwd(LIFParams& p, const Neuron& neuron, const at::Tensor& sequence,
                    const at::Tensor& x, const at::Tensor& spikes, const at::Tensor& membrane,
                    const at::Tensor& u_last) {
  p.T = sequence.size(0);
  p.B = sequence.size(1);
  p.N = c10::multiply_integers(neuron_shape(sequence));
  const NeuronOptions& options = neuron.options;
  p.reset = options.reset;
  p.v_reset = options.v_reset;
  p.detach_reset = options.detach_reset;
  p.surrogate = options.surrogate;
  p.surrogate_param = options.surrogate_param;
  const NeuronParams& np = neuron.params;
  p.beta = np.beta.values.data_ptr();
  p.alpha = np.alpha.values.data_ptr();
  p.threshold = np.threshold.values.data_ptr();
  p.beta_stride = np.beta.stride;
  p.alpha_stride = np.alpha.stride;
  p.threshold_stride = np.threshold.stride;
  p.u0 = np.u0.values.data_ptr();
  p.u0_batch_stride = np.u0.batch_stride;
  p.u0_stride = np.u0.stride;
  p.x = ptr(x);
  p.spikes = ptr(spikes);
  p.membrane = ptr(membrane);
  p.u_last = ptr(u_last);
}

void set_params_bwd(LIFParams& p, const Neuron& neuron, const at::Tensor& membrane,
                    const at::Tensor& x, const at::Tensor& grad_spikes,
                    const at::Tensor& grad_membrane, const at::Tensor& grad_u_last,
                    const at::Tensor& grad_x, const ParamPartials& partials) {
  set_params_fwd(p, neuron, membrane, x, at::Tensor(), membrane, at::Tensor());
  p.grad_spikes = ptr(grad_spikes);
  p.grad_membrane = ptr(grad_membrane);
  p.grad_u_last = ptr(grad_u_last);
  p.grad_x = ptr(grad_x);
  p.grad_beta = ptr(partials.beta);
  p.grad_alpha = ptr(partials.alpha);
  p.grad_threshold = ptr(partials.threshold);
  p.grad_u0 = ptr(partials.u0);
}

}  // namespace snnfast
