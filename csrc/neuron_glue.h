// Glue shared by the fused neuron ops (snnfast::lif, snnfast::recurrent_lif): the arithmetic
// dtype, output allocation, the per-neuron expansion of beta / alpha / threshold and u0, and
// the reduction of the kernels' [B, N] partial sums to each parameter's shape.
#pragma once

#include <ATen/ATen.h>

#include <optional>
#include <string>

#include "snnfast/neuron.h"

namespace snnfast {

// float64 for double input, float32 for every other floating dtype.
at::ScalarType acc_type(at::ScalarType dtype);

// at::empty (large CPU outputs from output_cache.h), filled with NaN when SNNFAST_POISON=1
// (tests), so that an element a kernel forgot to write cannot pass for a result.
at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options);

void check_same_device(const at::Tensor& x, const at::Tensor& t, const char* name);

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

NeuronParams neuron_params(const at::Tensor& x, const at::Tensor& beta, const at::Tensor& alpha,
                           const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
                           int64_t B);

Reset parse_reset(const std::string& reset);
Surrogate parse_surrogate(const std::string& surrogate);

// The forward pass checks the surrogate too, so that a bad one fails before the backward pass.
void check_surrogate(const std::string& surrogate, double surrogate_param);

// Sets the neuron's options and parameter pointers in p.
void fill_neuron(LIFParams& p, const NeuronParams& np, const std::string& reset, double v_reset,
                 bool detach_reset);

}  // namespace snnfast
