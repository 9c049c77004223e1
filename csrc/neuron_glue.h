// Glue shared by the fused neuron ops (snnfast::lif, snnfast::recurrent_lif): the checks of
// every op argument, the arithmetic dtype, output allocation, the per-neuron expansion of
// beta / alpha / threshold and u0, and the reduction of the kernels' [B, N] partial sums to
// each parameter's shape.
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

// The gradient of a parameter from the kernel's [B, N] partial sums (any number of rows):
// summed over the rows and the neurons that share the parameter.
at::Tensor reduce_to_param(const at::Tensor& partial, const at::Tensor& param,
                           at::IntArrayRef F);

// u0 broadcast to [B, *F] the way torch broadcasts; one shared by the whole batch (the
// learnable IMP) is kept at N values with a batch stride of 0.
struct InitialState {
  at::Tensor values;
  int64_t batch_stride;
};

// beta, alpha and threshold as N values each (one per neuron) and u0, in the arithmetic dtype.
struct NeuronParams {
  at::Tensor beta, alpha, threshold;
  InitialState u0;
};

// Checks beta, alpha, threshold (a single value, per channel or per neuron of x's neurons F)
// and u0 (broadcastable to the state [B, *F]): real numbers on x's device, or 0-d CPU
// tensors, which stand for a scalar on any device.
NeuronParams neuron_params(const char* op, const at::Tensor& x, const at::Tensor& beta,
                           const at::Tensor& alpha, const at::Tensor& threshold,
                           const std::optional<at::Tensor>& u0, int64_t B);

// The reset and the surrogate, parsed and checked. The forward op checks the surrogate too,
// so that a bad one fails before the backward pass.
struct NeuronOptions {
  Reset reset;
  double v_reset;
  bool detach_reset;
  Surrogate surrogate;
  double surrogate_param;
};

NeuronOptions neuron_options(const char* op, const std::string& reset, double v_reset,
                             bool detach_reset, const std::string& surrogate,
                             double surrogate_param);

// Sets the neuron's options and parameter pointers in p.
void fill_neuron(LIFParams& p, const NeuronParams& np, const NeuronOptions& options);

}  // namespace snnfast
