// Schemas of the event ops and the device-independent glue behind them (event_linear.h).
#include "event_linear.h"

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <vector>

#include "lif.h"
#include "neuron_glue.h"
#include "op_library.h"

namespace snnfast {

void check_events(const char* op, const at::Tensor& offsets, const at::Tensor& indices,
                  int64_t in_features, const at::Tensor& like, const char* extent) {
  TORCH_CHECK(offsets.dim() == 1 && offsets.size(0) >= 1 && offsets.scalar_type() == at::kLong, op,
              ": offsets must be a 1-d int64 tensor of rows + 1 values (snnfast.to_events), got ",
              offsets.scalar_type(), " of shape ", offsets.sizes());
  TORCH_CHECK(indices.dim() == 1 && indices.scalar_type() == at::kInt, op,
              ": indices must be a 1-d int32 tensor (snnfast.to_events), got ", indices.scalar_type(),
              " of shape ", indices.sizes());
  TORCH_CHECK(offsets.device() == like.device() && indices.device() == like.device(), op,
              ": offsets and indices must be on ", like.device(), " with the weight, got ",
              offsets.device(), " and ", indices.device());
  const int64_t first = offsets[0].item<int64_t>(), last = offsets[-1].item<int64_t>();
  TORCH_CHECK(first >= 0 && first <= last && last <= indices.numel(), op,
              ": offsets must run from >= 0 to at most the ", indices.numel(), " indices, got ", first,
              " .. ", last);
  bool decreasing = false;
  int32_t low = 0, high = 0;
  if (offsets.is_cpu()) {
    // Plain loops, which vectorize: the reductions below are five ops and their temporaries,
    // 0.1 ms a call where the 6,400 rows of the 700-256-20 benchmark take 1-3 ms.
    const at::Tensor off_c = offsets.contiguous(), idx_c = indices.contiguous();
    const int64_t* off = off_c.data_ptr<int64_t>();
    const int32_t* idx = idx_c.data_ptr<int32_t>();
    for (int64_t r = 0; r + 1 < offsets.size(0); ++r) decreasing |= off[r + 1] < off[r];
    low = std::numeric_limits<int32_t>::max(), high = std::numeric_limits<int32_t>::min();
    for (int64_t k = first; k < last; ++k) {
      low = std::min(low, idx[k]);
      high = std::max(high, idx[k]);
    }
  } else {
    decreasing = offsets.size(0) > 2 && (offsets.diff() < 0).any().item<bool>();
    if (last > first) {
      const auto [low_t, high_t] = at::aminmax(indices.slice(0, first, last));
      low = low_t.item<int32_t>(), high = high_t.item<int32_t>();
    }
  }
  TORCH_CHECK(!decreasing, op, ": offsets must not decrease");
  TORCH_CHECK(last == first || (low >= 0 && high < in_features), op, ": indices must lie in [0, ", in_features,
              ") (", extent, "), got ", low, " .. ", high);
}

void check_float(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, op, ": ", name,
              " must be float32 or float64 (the event kernels' dtypes), got ", t.scalar_type());
}

namespace {

void check_binary_result(const char* op, bool check_binary, const at::Tensor& not_binary) {
  TORCH_CHECK(!check_binary || not_binary.item<int32_t>() == 0, op,
              ": spikes must hold only 0 and 1, found another value; pass check_binary=False "
              "to count every nonzero value as a spike");
}

}  // namespace

at::Tensor new_index_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor out = at::empty(sizes, options);
  const char* flag = std::getenv("SNNFAST_POISON");
  if (flag != nullptr && flag[0] == '1') out.fill_(-1);
  return out;
}

SpikeBits spike_bits(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return {4, 0x7FFFFFFFu, 0x3F800000u};
    case at::kDouble: return {8, 0x7FFFFFFFFFFFFFFFull, 0x3FF0000000000000ull};
    case at::kHalf: return {2, 0x7FFFu, 0x3C00u};
    case at::kBFloat16: return {2, 0x7FFFu, 0x3F80u};
    case at::kBool:
    case at::kByte: return {1, 0xFFu, 0x01u};
    default:
      TORCH_CHECK(false, "snnfast.spikes_to_events: spikes must be float32, float64, float16, bfloat16, "
                  "bool or uint8, got ", dtype);
  }
}

std::tuple<at::Tensor, at::Tensor> spikes_to_events(const at::Tensor& spikes_in, bool check_binary,
                                                    const EventKernels& kernels) {
  constexpr const char* op = "snnfast.spikes_to_events";
  TORCH_CHECK(spikes_in.dim() >= 1, op, ": spikes must have at least one dimension (the neurons, last)");
  const SpikeBits bits = spike_bits(spikes_in.scalar_type());
  const int64_t N = spikes_in.size(-1);
  TORCH_CHECK(N <= std::numeric_limits<int32_t>::max(), op, ": ", N,
              " neurons per row are too many for int32 indices");
  const at::DeviceGuard device_guard(spikes_in.device());
  const int64_t M = c10::multiply_integers(spikes_in.sizes().slice(0, spikes_in.dim() - 1));
  const at::Tensor spikes = spikes_in.contiguous().view({M, N});
  const auto long_options = spikes.options().dtype(at::kLong);
  const auto int_options = spikes.options().dtype(at::kInt);

  at::Tensor offsets = new_index_output({M + 1}, long_options);
  at::Tensor not_binary = at::zeros({1}, int_options);
  at::Tensor indices;
  if (M == 0 || N == 0) {
    offsets.zero_();
    indices = new_index_output({0}, int_options);
  } else if (kernels.convert != nullptr) {
    indices = kernels.convert(spikes, bits, offsets, not_binary);
  } else {
    offsets.narrow(0, 0, 1).zero_();
    at::Tensor counts = new_index_output({M}, long_options);
    kernels.count(spikes, bits, counts, not_binary);
    at::Tensor ends = offsets.narrow(0, 1, M);
    at::cumsum_out(ends, counts, 0);
    indices = new_index_output({offsets[M].item<int64_t>()}, int_options);
    if (indices.numel() > 0) kernels.fill(spikes, bits, offsets, indices);
  }
  check_binary_result(op, check_binary, not_binary);
  return {offsets, indices};
}

at::Tensor spikes_to_bits(const at::Tensor& spikes_in, bool check_binary, const EventKernels& kernels) {
  constexpr const char* op = "snnfast.spikes_to_bits";
  TORCH_CHECK(kernels.pack != nullptr, op, ": no kernel on ", spikes_in.device(),
              "; use snnfast.longseq.bitpack.pack_bits");
  TORCH_CHECK(spikes_in.dim() >= 1, op, ": spikes must have at least one dimension (the neurons, last)");
  const SpikeBits bits = spike_bits(spikes_in.scalar_type());
  const int64_t N = spikes_in.size(-1), bytes = (N + 7) / 8;
  const int64_t M = c10::multiply_integers(spikes_in.sizes().slice(0, spikes_in.dim() - 1));
  const at::DeviceGuard device_guard(spikes_in.device());
  std::vector<int64_t> shape(spikes_in.sizes().begin(), spikes_in.sizes().end());
  shape.back() = bytes;
  at::Tensor packed = new_index_output(shape, spikes_in.options().dtype(at::kByte));
  at::Tensor not_binary = at::zeros({1}, spikes_in.options().dtype(at::kInt));
  if (M > 0 && N > 0) {
    at::Tensor packed_rows = packed.view({M, bytes});
    kernels.pack(spikes_in.contiguous().view({M, N}), bits, packed_rows, not_binary);
  }
  check_binary_result(op, check_binary, not_binary);
  return packed;
}

at::Tensor bits_to_spikes(const at::Tensor& packed_in, int64_t n, at::ScalarType dtype, const EventKernels& kernels) {
  constexpr const char* op = "snnfast.bits_to_spikes";
  TORCH_CHECK(kernels.unpack != nullptr, op, ": no kernel on ", packed_in.device(),
              "; use snnfast.longseq.bitpack.unpack_bits");
  TORCH_CHECK(n >= 0, op, ": n must be >= 0, got ", n);
  TORCH_CHECK(packed_in.scalar_type() == at::kByte && packed_in.dim() >= 1 && packed_in.size(-1) == (n + 7) / 8,
              op, ": packed must be uint8 [..., ceil(n / 8) = ", (n + 7) / 8, "] (spikes_to_bits), got ",
              packed_in.scalar_type(), " of shape ", packed_in.sizes());
  TORCH_CHECK(at::isFloatingType(dtype), op, ": dtype must be floating point, got ", dtype);
  const at::DeviceGuard device_guard(packed_in.device());
  std::vector<int64_t> shape(packed_in.sizes().begin(), packed_in.sizes().end());
  shape.back() = n;
  at::Tensor spikes = new_output(shape, packed_in.options().dtype(dtype));
  const int64_t M = c10::multiply_integers(packed_in.sizes().slice(0, packed_in.dim() - 1));
  if (M > 0 && n > 0) {
    at::Tensor rows = spikes.view({M, n});
    kernels.unpack(packed_in.contiguous().view({M, (n + 7) / 8}), rows);
  }
  return spikes;
}

namespace {

// event_linear's arguments, checked: weight_t [in, out] and bias (undefined: none) contiguous.
struct LinearArgs {
  at::Tensor weight_t, bias;
};

LinearArgs linear_args(const char* op, const at::Tensor& offsets, const at::Tensor& indices,
                       const at::Tensor& weight_t_in, const std::optional<at::Tensor>& bias_in,
                       const EventKernels& kernels) {
  TORCH_CHECK(weight_t_in.dim() == 2, op, ": weight_t must be [in_features, out_features] (the weight "
              "transposed), got shape ", weight_t_in.sizes());
  check_float(op, "weight_t", weight_t_in);
  const int64_t in = weight_t_in.size(0), out = weight_t_in.size(1);
  check_events(op, offsets, indices, in, weight_t_in);
  LinearArgs args;
  if (bias_in.has_value()) {
    TORCH_CHECK(bias_in->dim() == 1 && bias_in->size(0) == out, op, ": bias must be [", out,
                "] (out_features), got shape ", bias_in->sizes());
    TORCH_CHECK(bias_in->scalar_type() == weight_t_in.scalar_type() && bias_in->device() == weight_t_in.device(),
                op, ": bias must have weight_t's dtype and device (", weight_t_in.scalar_type(), " on ",
                weight_t_in.device(), "), got ", bias_in->scalar_type(), " on ", bias_in->device());
    args.bias = bias_in->contiguous();
  }
  const at::DeviceGuard device_guard(weight_t_in.device());
  if (!weight_t_in.is_contiguous() && weight_t_in.t().is_contiguous() && kernels.transpose != nullptr) {
    args.weight_t = at::empty({in, out}, weight_t_in.options());
    kernels.transpose(weight_t_in.t(), args.weight_t);
  } else {
    args.weight_t = weight_t_in.contiguous();
  }
  return args;
}

}  // namespace

at::Tensor event_linear(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t_in,
                        const std::optional<at::Tensor>& bias_in, const EventKernels& kernels) {
  const LinearArgs args = linear_args("snnfast.event_linear", offsets, indices, weight_t_in, bias_in, kernels);
  const at::DeviceGuard device_guard(weight_t_in.device());
  const int64_t M = offsets.size(0) - 1;
  at::Tensor y = new_output({M, args.weight_t.size(1)}, args.weight_t.options());
  if (y.numel() > 0) kernels.linear(offsets.contiguous(), indices.contiguous(), args.weight_t, args.bias, y);
  return y;
}

LIFEventsResult event_linear_lif(const at::Tensor& offsets, const at::Tensor& indices, const at::Tensor& weight_t,
                                 const std::optional<at::Tensor>& bias, int64_t T, int64_t B,
                                 const at::Tensor& beta, const at::Tensor& alpha, const at::Tensor& threshold,
                                 const std::optional<at::Tensor>& u0, const std::string& reset, double v_reset,
                                 bool detach_reset, const std::string& surrogate, double surrogate_param,
                                 bool save_membrane, LIFKernel kernel, const EventKernels& event_kernels,
                                 bool kernel_takes_events) {
  constexpr const char* op = "snnfast.event_linear_lif";
  TORCH_CHECK(T >= 0 && B >= 0 && offsets.dim() == 1 && offsets.size(0) == T * B + 1, op,
              ": offsets must have T x B + 1 = ", T * B + 1, " values (T = ", T, " steps of B = ", B,
              " samples), got shape ", offsets.sizes());
  SpikeEvents events;
  if (!kernel_takes_events) {
    const at::Tensor x = event_linear(offsets, indices, weight_t, bias, event_kernels);
    const LIFForwardResult forward =
        lif_forward(x.view({T, B, x.size(1)}), beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate,
                    surrogate_param, save_membrane, kernel, &events, &event_kernels);
    return events_result(forward, save_membrane, events);
  }
  const LinearArgs args = linear_args(op, offsets, indices, weight_t, bias, event_kernels);
  const EventCurrent current{offsets.contiguous(), indices.contiguous(), args.weight_t, args.bias};
  // The current's shape and dtype, with no values behind it.
  const at::Tensor shape = at::empty({1, 1, 1}, args.weight_t.options()).expand({T, B, args.weight_t.size(1)});
  const LIFForwardResult forward =
      lif_forward(shape, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param,
                  save_membrane, kernel, &events, nullptr, &current);
  return events_result(forward, save_membrane, events);
}

at::Tensor event_linear_weight_grad(const at::Tensor& offsets, const at::Tensor& indices,
                                    const at::Tensor& grad_y_in, int64_t in_features,
                                    const EventKernels& kernels) {
  constexpr const char* op = "snnfast.event_linear_weight_grad";
  TORCH_CHECK(in_features >= 0, op, ": in_features must be >= 0, got ", in_features);
  const int64_t M = offsets.dim() == 1 ? offsets.size(0) - 1 : -1;
  TORCH_CHECK(grad_y_in.dim() == 2 && grad_y_in.size(0) == M, op, ": grad_y must be [rows, out_features] "
              "with the ", M, " rows of offsets, got shape ", grad_y_in.sizes());
  check_float(op, "grad_y", grad_y_in);
  check_events(op, offsets, indices, in_features, grad_y_in);
  const at::DeviceGuard device_guard(grad_y_in.device());
  const at::Tensor grad_y = grad_y_in.contiguous();
  at::Tensor grad_weight_t = new_output({in_features, grad_y.size(1)}, grad_y.options());
  if (grad_weight_t.numel() > 0)
    kernels.weight_grad(offsets.contiguous(), indices.contiguous(), grad_y, grad_weight_t);
  return grad_weight_t;
}

SNNFAST_LIBRARY_FRAGMENT(m) {
  // spikes [..., N] -> (offsets [rows + 1] int64, indices [nnz] int32), rows = numel / N.
  m.def("spikes_to_events(Tensor spikes, bool check_binary) -> (Tensor offsets, Tensor indices)");
  // spikes [..., N] -> uint8 [..., ceil(N / 8)], snnfast.longseq.bitpack's format.
  m.def("spikes_to_bits(Tensor spikes, bool check_binary) -> Tensor");
  // packed uint8 [..., ceil(n / 8)] -> spikes [..., n] in dtype.
  m.def("bits_to_spikes(Tensor packed, int n, ScalarType dtype) -> Tensor");
  // y [rows, out] = S W^T + b over the events; weight_t = W^T [in, out].
  // Pass weight_t as the view weight.t(): the op transposes it faster than contiguous() does.
  m.def("event_linear(Tensor offsets, Tensor indices, Tensor weight_t, Tensor? bias) -> Tensor");
  // lif_events (csrc/lif.cpp) of event_linear's current viewed as [T, B, out] (csrc/lif.h).
  m.def(
      "event_linear_lif(Tensor offsets, Tensor indices, Tensor weight_t, Tensor? bias, int T, int B, "
      "Tensor beta, Tensor alpha, Tensor threshold, Tensor? u0, str reset, float v_reset, bool detach_reset, "
      "str surrogate, float surrogate_param, bool save_membrane) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last, Tensor offsets, Tensor indices)");
  // grad of weight_t [in_features, out] = S^T grad_y over the events.
  m.def("event_linear_weight_grad(Tensor offsets, Tensor indices, Tensor grad_y, int in_features) -> Tensor");
}

}  // namespace snnfast
