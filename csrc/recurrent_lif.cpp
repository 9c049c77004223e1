// Schemas of the fused recurrent LIF ops and the device-independent glue behind them: the
// time loop with one ATen GEMM per step, and one GEMM for g_V at the end.
//
// Backward, with g_I_t = alpha g_h_t (which is also g_x_t):
//   g_o_{t-1} += g_I_t V                    one GEMM per step
//   g_V        = sum_t g_I_t^T o_{t-1}      one GEMM over all (T - 1) B rows at the end
//   g_alpha_k += sum_{t,b} g_h_t[b, k] I_t[b, k]
//              = (the x part, from the kernels) + sum_j V[k, j] M[k, j],  M = g_h^T o_prev
// so the input current I_t need not be kept from the forward pass; g_h and M are computed
// only when alpha needs a gradient.
#include "recurrent_lif.h"

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <c10/core/DeviceGuard.h>
#include "event_linear.h"
#include "neuron_glue.h"
#include "op_library.h"

namespace snnfast {
namespace {

// The recurrent op's additions to the LIFParams setters of neuron_glue.h.
void set_recurrent_params_fwd(RecurrentLIFParams& p, const Neuron& neuron, const at::Tensor& x,
                              const at::Tensor& spikes, const at::Tensor& membrane,
                              const at::Tensor& u_last, const at::Tensor& V,
                              const at::Tensor& recurrent) {
  set_params_fwd(p, neuron, x, x, spikes, membrane, u_last);
  p.V = V.data_ptr();
  p.recurrent = recurrent.data_ptr();
}

void set_recurrent_params_bwd(RecurrentLIFParams& p, const Neuron& neuron,
                              const at::Tensor& membrane, const at::Tensor& x,
                              const at::Tensor& grad_spikes, const at::Tensor& grad_membrane,
                              const at::Tensor& grad_x, const ParamPartials& partials,
                              const at::Tensor& V, const at::Tensor& grad_recurrent,
                              const at::Tensor& grad_h, const at::Tensor& grad_u) {
  // grad_u_last is folded into grad_u, where the kernels start from.
  set_params_bwd(p, neuron, membrane, x, grad_spikes, grad_membrane, at::Tensor(), grad_x,
                 partials);
  p.V = V.data_ptr();
  p.grad_recurrent = grad_recurrent.data_ptr();
  p.grad_h = ptr(grad_h);
  p.grad_u = grad_u.data_ptr();
}

// Runs loop(b0, b1) over blocks of batch rows: on the CPU's threads when the device asks
// for it and there is enough work, else once over all rows. See recurrent_lif.h.
template <typename Loop>
void for_row_blocks(const RecurrentKernels& kernels, int64_t T, int64_t B, int64_t N,
                    const Loop& loop) {
  if (!kernels.rows_on_threads) {
    loop(0, B);
    return;
  }
  const int64_t grain = std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(T * N, 1));
  at::parallel_for(0, B, grain, [&](int64_t b0, int64_t b1) {
    // The op runs below autograd; the pool's threads must too (V may require grad, and
    // at::mm_out refuses outputs of inputs that do).
    const at::AutoDispatchBelowADInplaceOrView below_autograd;
    loop(b0, b1);
  });
}

}  // namespace

RecurrentForwardResult recurrent_lif_forward(
    const at::Tensor& x_in, const at::Tensor& V_in, const at::Tensor& beta,
    const at::Tensor& alpha, const at::Tensor& threshold, const std::optional<at::Tensor>& u0,
    const std::string& reset, double v_reset, bool detach_reset, const std::string& surrogate,
    double surrogate_param, bool save_membrane, const RecurrentKernels& kernels, SpikeEvents* events,
    const EventKernels* event_kernels) {
  const char* op = events != nullptr ? "snnfast.recurrent_lif_events"
                   : save_membrane   ? "snnfast.recurrent_lif"
                                     : "snnfast.recurrent_lif_inference";
  check_input(op, x_in, SequenceShape::TBN);
  check_recurrent_weights(op, V_in, x_in, "x");
  const c10::DeviceGuard device_guard(x_in.device());  // the kernels launch on the current device
  const at::ScalarType acc = acc_type(x_in.scalar_type());
  const at::Tensor x = x_in.to(acc).contiguous();
  const at::Tensor V = V_in.to(acc).contiguous();
  const Neuron neuron = neuron_args(op, x, beta, alpha, threshold, u0, reset, v_reset,
                                    detach_reset, surrogate, surrogate_param);
  const int64_t T = x.size(0), B = x.size(1), N = x.size(2);
  const auto options = x.options();
  at::Tensor spikes = new_output(x.sizes(), options);
  at::Tensor membrane = save_membrane ? new_output(x.sizes(), options) : at::Tensor();
  at::Tensor u_last = new_output({B, N}, options);
  at::Tensor recurrent = at::zeros({B, N}, options);  // o_0 V^T = 0

  RecurrentLIFParams p;
  set_recurrent_params_fwd(p, neuron, x, spikes, membrane, u_last, V, recurrent);
  const bool emitting = events != nullptr && event_kernels == nullptr;
  if (emitting) {
    TORCH_CHECK(kernels.forward_emitting != nullptr, op, ": this device's steps emit no events; register ",
                "the op with the device's event kernels (recurrent_lif_events_with)");
    events->offsets = new_index_output({T * B + 1}, options.dtype(at::kLong));
    p.events = events;
  }
  if (T == 0) {
    const InitialState& u0_values = neuron.params.u0;
    u_last.copy_(u0_values.values.view({u0_values.batch_stride == 0 ? 1 : B, u0_values.stride == 0 ? 1 : N})
                      .expand({B, N}));
  } else if (B * N > 0 &&
             !(kernels.forward_sequence != nullptr && kernels.forward_sequence(p, acc))) {
    const at::Tensor V_t = V.t();
    auto steps = [&] {
      for_row_blocks(kernels, T, B, N, [&](int64_t b0, int64_t b1) {
        at::Tensor rows_recurrent = recurrent.narrow(0, b0, b1 - b0);
        for (int64_t t = 0; t < T; ++t) {
          if (t > 0) at::mm_out(rows_recurrent, spikes.select(0, t - 1).narrow(0, b0, b1 - b0), V_t);
          kernels.forward_step(p, t, b0, b1, acc);
        }
      });
    };
    if (emitting) {
      kernels.forward_emitting(p, steps);
    } else {
      steps();
    }
  }
  finish_spike_events(events, event_kernels, spikes.view({T * B, N}));  // rows: the T x B samples
  return {spikes.to(x_in.scalar_type()), membrane, u_last};
}

RecurrentBackwardResult recurrent_lif_backward(
    const at::Tensor& grad_spikes_in, const std::optional<at::Tensor>& grad_membrane_in,
    const std::optional<at::Tensor>& grad_u_last_in, const std::optional<at::Tensor>& spikes_in,
    const at::Tensor& membrane, const std::optional<at::Tensor>& x_in, const at::Tensor& V_in,
    const at::Tensor& beta, const at::Tensor& alpha, const at::Tensor& threshold,
    const std::optional<at::Tensor>& u0, const std::string& reset, double v_reset,
    bool detach_reset, const std::string& surrogate, double surrogate_param,
    bool detach_recurrent, std::array<bool, 6> output_mask, const RecurrentKernels& kernels) {
  constexpr const char* op = "snnfast.recurrent_lif_backward";
  const bool need_x = output_mask[0], need_V = output_mask[1], need_beta = output_mask[2],
             need_alpha = output_mask[3], need_threshold = output_mask[4],
             need_u0 = output_mask[5] && u0.has_value();
  const at::ScalarType dtype = grad_spikes_in.scalar_type();
  check_saved_trace(op, membrane, SequenceShape::TBN, grad_spikes_in, grad_membrane_in,
                    grad_u_last_in, x_in, need_alpha);
  check_like(op, "spikes", spikes_in, membrane.sizes(), "membrane's", membrane, dtype);
  check_given(op, "spikes", spikes_in, need_V || need_alpha, "the gradients of V and alpha");
  check_recurrent_weights(op, V_in, membrane, "membrane");
  const c10::DeviceGuard device_guard(membrane.device());
  const Neuron neuron = neuron_args(op, membrane, beta, alpha, threshold, u0, reset, v_reset,
                                    detach_reset, surrogate, surrogate_param);
  const int64_t T = membrane.size(0), B = membrane.size(1), N = membrane.size(2);
  const at::ScalarType acc = membrane.scalar_type();
  const auto options = membrane.options();
  const at::Tensor grad_spikes = grad_spikes_in.to(acc).contiguous();
  const at::Tensor grad_membrane = contiguous_or_undefined(grad_membrane_in, acc);
  const at::Tensor x = need_alpha ? x_in->to(acc).contiguous() : at::Tensor();
  const at::Tensor V = V_in.to(acc).contiguous();

  at::Tensor grad_x = new_output({T, B, N}, options);  // g_I: always, see recurrent.h
  at::Tensor grad_h = need_alpha ? new_output({T, B, N}, options) : at::Tensor();
  auto partial = [&](bool needed) { return needed ? at::zeros({B, N}, options) : at::Tensor(); };
  // The kernels accumulate (+=) into the partial sums.
  const ParamPartials partials{partial(need_beta), partial(need_alpha), partial(need_threshold),
                               at::Tensor()};
  // g_u: from the final state at t = T, the gradient of u0 once the loop is done.
  at::Tensor grad_u = grad_u_last_in.has_value()
                          ? grad_u_last_in->to(acc).reshape({B, N}).clone(at::MemoryFormat::Contiguous)
                          : at::zeros({B, N}, options);
  at::Tensor grad_recurrent = at::zeros({B, N}, options);  // nothing reaches o_T through V

  RecurrentLIFParams p;
  set_recurrent_params_bwd(p, neuron, membrane, x, grad_spikes, grad_membrane, grad_x, partials,
                           V, grad_recurrent, grad_h, grad_u);
  p.detach_recurrent = detach_recurrent;
  if (T > 0 && B * N > 0 &&
      !(kernels.backward_sequence != nullptr && kernels.backward_sequence(p, acc))) {
    for_row_blocks(kernels, T, B, N, [&](int64_t b0, int64_t b1) {
      at::Tensor rows_grad_recurrent = grad_recurrent.narrow(0, b0, b1 - b0);
      for (int64_t t = T - 1; t >= 0; --t) {
        kernels.backward_step(p, t, b0, b1, acc);
        // With detach_recurrent nothing reaches o_{t-1} through V: grad_recurrent stays 0.
        if (t > 0 && !detach_recurrent)
          at::mm_out(rows_grad_recurrent, grad_x.select(0, t).narrow(0, b0, b1 - b0), V);
      }
    });
  }

  // sum over t = 1..T-1 and b of g[t, b, :]^T o_{t-1}[b, :]: step t = 0 has o_{-1} = 0.
  const int64_t rows = std::max<int64_t>(T - 1, 0) * B;
  auto times_previous_spikes = [&](const at::Tensor& g) {
    if (rows == 0) return at::zeros({N, N}, options);
    return at::mm(g.narrow(0, 1, T - 1).reshape({rows, N}).t(),
                  spikes_in->to(acc).narrow(0, 0, T - 1).reshape({rows, N}));
  };
  const at::IntArrayRef F = membrane.sizes().slice(2);
  at::Tensor grad_alpha = no_gradient(membrane);
  if (need_alpha) {
    const at::Tensor recurrent_part = (V * times_previous_spikes(grad_h)).sum(1).view({1, N});
    grad_alpha = reduce_to_param(partials.alpha.sum(0, true) + recurrent_part, alpha, F);
  }
  return {need_x ? grad_x.to(dtype) : no_gradient(membrane),
          need_V ? times_previous_spikes(grad_x).to(V_in.scalar_type()) : no_gradient(membrane),
          need_beta ? reduce_to_param(partials.beta, beta, F) : no_gradient(membrane),
          grad_alpha,
          need_threshold ? reduce_to_param(partials.threshold, threshold, F) : no_gradient(membrane),
          need_u0 ? reduce_to_u0(grad_u, *u0, {B, N}) : no_gradient(membrane)};
}

SNNFAST_LIBRARY_FRAGMENT(m) {
  m.def(
      "recurrent_lif(Tensor x, Tensor V, Tensor beta, Tensor alpha, Tensor threshold, "
      "Tensor? u0, str reset, float v_reset, bool detach_reset, str surrogate, "
      "float surrogate_param, bool detach_recurrent=False) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last)");
  // recurrent_lif with its spikes also as events (csrc/lif.h SpikeEvents, rows t * B + b), and
  // the membrane trace only where save_membrane (an empty tensor otherwise): lif_events'
  // outputs. Its autograd (snnfast/ops/_fused.py) is recurrent_lif's, through
  // recurrent_lif_backward, where save_membrane.
  m.def(
      "recurrent_lif_events(Tensor x, Tensor V, Tensor beta, Tensor alpha, Tensor threshold, "
      "Tensor? u0, str reset, float v_reset, bool detach_reset, str surrogate, "
      "float surrogate_param, bool detach_recurrent, bool save_membrane) -> "
      "(Tensor spikes, Tensor membrane, Tensor u_last, Tensor offsets, Tensor indices)");
  // recurrent_lif without the membrane trace, where no gradient can be asked for.
  m.def(
      "recurrent_lif_inference(Tensor x, Tensor V, Tensor beta, Tensor alpha, Tensor threshold, "
      "Tensor? u0, str reset, float v_reset, bool detach_reset, str surrogate, "
      "float surrogate_param, bool detach_recurrent=False) -> (Tensor spikes, Tensor u_last)");
  m.def(
      "recurrent_lif_backward(Tensor grad_spikes, Tensor? grad_membrane, Tensor? grad_u_last, "
      "Tensor? spikes, Tensor membrane, Tensor? x, Tensor V, Tensor beta, Tensor alpha, "
      "Tensor threshold, Tensor? u0, str reset, float v_reset, bool detach_reset, "
      "str surrogate, float surrogate_param, bool detach_recurrent, bool[6] output_mask) -> "
      "(Tensor grad_x, "
      "Tensor grad_V, Tensor grad_beta, Tensor grad_alpha, Tensor grad_threshold, "
      "Tensor grad_u0)");
}

}  // namespace snnfast
