// Glue shared by the fused neuron ops (snnfast::lif, snnfast::recurrent_lif): the checks of
// every op argument, the arithmetic dtype, output allocation, the per-neuron expansion of
// beta / alpha / threshold and u0, the LIFParams setters, and the reduction of the kernels'
// [B, N] partial sums to each parameter's shape.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "snnfast/neuron.h"

namespace snnfast {

// ---- argument checks ----------------------------------------------------------------------
// A kernel trusts its LIFParams: every pointer must cover the [T, B, N] or [B, N] elements it
// reads, in the dtype it reads them as, on the device it runs on. So each op entry point
// checks every tensor argument first, one call per argument. `op` is the op's name as the
// user called it ("snnfast.recurrent_lif_backward"); every message starts with it and names
// the argument.

// x of a forward op: [T, B, *F] (TBF) or exactly [T, B, N] (TBN, the recurrent op), floating.
enum class SequenceShape { TBF, TBN };
void check_input(const char* op, const at::Tensor& x, SequenceShape shape);

// membrane of a backward op: the contiguous trace of the forward pass, in the arithmetic dtype
// of grad_spikes (checked first with check_like).
void check_membrane(const char* op, const at::Tensor& membrane, const at::Tensor& grad_spikes,
                    SequenceShape shape);

// A tensor that must have exactly `shape` ("membrane's", "the state's": whose it is), be on
// like's device and be floating point, of `dtype` where one is given (tensors the kernel
// reads in the input dtype). The optional one is checked only where given.
void check_like(const char* op, const char* name, const at::Tensor& t, at::IntArrayRef shape,
                const char* whose, const at::Tensor& like,
                std::optional<at::ScalarType> dtype = std::nullopt);
void check_like(const char* op, const char* name, const std::optional<at::Tensor>& t,
                at::IntArrayRef shape, const char* whose, const at::Tensor& like,
                std::optional<at::ScalarType> dtype = std::nullopt);

// An optional tensor that the requested gradients need (x for alpha's).
void check_given(const char* op, const char* name, const std::optional<at::Tensor>& t,
                 bool needed, const char* needed_for);

// The arguments every backward op shares: membrane, the forward pass's trace ([T, B, *F]),
// and the gradients of the outputs and x (the forward's input) that have its shape, its
// device and, for grad_spikes and x, the input dtype; x given when alpha needs a gradient.
void check_saved_trace(const char* op, const at::Tensor& membrane, SequenceShape shape,
                       const at::Tensor& grad_spikes,
                       const std::optional<at::Tensor>& grad_membrane,
                       const std::optional<at::Tensor>& grad_u_last,
                       const std::optional<at::Tensor>& x, bool need_alpha);

// V of the recurrent ops: [N, N] for the N neurons of the op's sequence (x, or membrane in
// the backward op), floating, on its device.
void check_recurrent_weights(const char* op, const at::Tensor& V, const at::Tensor& sequence,
                             const char* sequence_name);

// ---- the neuron ---------------------------------------------------------------------------

// float64 for double input, float32 for every other floating dtype.
at::ScalarType acc_type(at::ScalarType dtype);

// at::empty (large CPU outputs from output_cache.h), filled with NaN when SNNFAST_POISON=1
// (tests), so that an element a kernel forgot to write cannot pass for a result.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);

// F, the neuron shape of a [T, B, *F] tensor.
inline at::IntArrayRef neuron_shape(const at::Tensor& x) { return x.sizes().slice(2); }

// A tensor's data for a LIFParams: null for an absent (undefined) one.
inline void* ptr(const at::Tensor& t) { return t.defined() ? t.data_ptr() : nullptr; }

// An optional tensor in `dtype`, contiguous; undefined where none was given.
at::Tensor contiguous_or_undefined(const std::optional<at::Tensor>& t, at::ScalarType dtype);

// What a backward op returns for a gradient that was not asked for.
inline at::Tensor no_gradient(const at::Tensor& like) { return at::empty({0}, like.options()); }

// The gradient of a parameter from the kernel's [B, N] partial sums (any number of rows):
// summed over the rows and the neurons that share the parameter.
at::Tensor reduce_to_param(const at::Tensor& partial, const at::Tensor& param,
                           at::IntArrayRef F);

// The gradient of u0 from the gradient of the state u_0, [B, N] for a state of shape
// state_shape ([B, *F]): summed over what u0 broadcast over.
at::Tensor reduce_to_u0(const at::Tensor& grad_state, const at::Tensor& u0,
                        at::IntArrayRef state_shape);

// A parameter as the kernels read it (LIFParams): neuron n's value is values[n * stride];
// one value per layer is kept as it is, with a stride of 0.
struct PerNeuron {
  at::Tensor values;
  int64_t stride;
};

// u0 broadcast to [B, *F] the way torch broadcasts; one shared by the whole batch (the
// learnable IMP) is kept at N values with a batch stride of 0, a missing or single u0 at one
// value with both strides 0.
struct InitialState {
  at::Tensor values;
  int64_t batch_stride;
  int64_t stride = 1;
};

// beta, alpha, threshold and u0 in the arithmetic dtype, as the kernels index them.
struct NeuronParams {
  PerNeuron beta, alpha, threshold;
  InitialState u0;
};

// The reset and the surrogate, parsed and checked. The forward op checks the surrogate too,
// so that a bad one fails before the backward pass.
struct NeuronOptions {
  Reset reset;
  double v_reset;
  bool detach_reset;
  Surrogate surrogate;
  double surrogate_param;
};

// The neuron of an op call, parsed and checked: its options and per-neuron parameters.
// beta, alpha and threshold may be a single value, per channel or per neuron of the
// sequence's neurons F, and u0 broadcastable to the state [B, *F]: real numbers on the
// sequence's device, or 0-d CPU tensors, which stand for a scalar on any device.
struct Neuron {
  NeuronOptions options;
  NeuronParams params;
};

// sequence: the op's [T, B, *F] sequence (x, or membrane in a backward op), whose neurons F
// the parameters describe.
Neuron neuron_args(const char* op, const at::Tensor& sequence, const at::Tensor& beta,
                   const at::Tensor& alpha, const at::Tensor& threshold,
                   const std::optional<at::Tensor>& u0, const std::string& reset,
                   double v_reset, bool detach_reset, const std::string& surrogate,
                   double surrogate_param);

// ---- the LIFParams setters (after mamba's set_ssm_params_fwd / _bwd) ----------------------
// The forward setter fills the sizes (from the [T, B, *F] sequence), the neuron and the
// tensors of the forward pass; the backward setter calls it, then adds the gradients. A
// tensor that is not there is passed undefined and becomes a null pointer.

// The kernels' [B, N] partial sums of the parameter gradients (undefined: not asked for).
struct ParamPartials {
  at::Tensor beta, alpha, threshold, u0;
};

void set_params_fwd(LIFParams& p, const Neuron& neuron, const at::Tensor& sequence,
                    const at::Tensor& x, const at::Tensor& spikes, const at::Tensor& membrane,
                    const at::Tensor& u_last);

void set_params_bwd(LIFParams& p, const Neuron& neuron, const at::Tensor& membrane,
                    const at::Tensor& x, const at::Tensor& grad_spikes,
                    const at::Tensor& grad_membrane, const at::Tensor& grad_u_last,
                    const at::Tensor& grad_x, const ParamPartials& partials);

}  // namespace snnfast
