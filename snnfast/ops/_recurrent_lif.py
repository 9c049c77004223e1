"""snnfast.recurrent_lif: the fused recurrent LIF op, with its autograd and fake (meta) kernels.

The op runs in C++ (torch.ops.snnfast.recurrent_lif / recurrent_lif_backward), time loop
included; this file only checks arguments, turns floats into tensors and tells autograd
which gradients to ask for.
"""
from __future__ import annotations

import torch

from . import _args, _library, reference
from ._lif import fall_back


def recurrent_lif(
    x: torch.Tensor,
    V: torch.Tensor,
    beta,
    *,
    alpha=1.0,
    threshold=1.0,
    reset: str = "hard",
    v_reset: float = 0.0,
    detach_reset: bool = False,
    u0=None,
    surrogate="rectangle",
    return_state: bool = False,
    return_membrane: bool = False,
):
    """Runs T steps of recurrently connected LIF neurons over x of shape [T, B, N].

    I_t = x_t + o_{t-1} V^T (o_0 = 0), then the neuron of snnfast.lif:
    h_t = beta * u_{t-1} + alpha * I_t; o_t = H(h_t - threshold); u_t = reset(h_t, o_t),
    as shared/design/neuron-spec.md defines, with BPTT through `surrogate` in the backward pass.

    Args:
        x: input current [T, B, N], float16, bfloat16, float32 or float64.
        V: recurrent weights [N, N] (learnable): V[n, j] is the weight from neuron j to n.
        beta, alpha, threshold, reset, v_reset, detach_reset, u0, surrogate, return_state,
            return_membrane: as in snnfast.lif.

    Returns:
        The spikes (x's dtype and shape), or a tuple (spikes, [u_T], [h]) with the flags.
        u_T and h are float32 for float16/bfloat16 input (the arithmetic precision, in which
        the op also computes o_{t-1} V^T).
    """
    surrogate = _args.check_recurrent_lif_args(x, V, beta, alpha, threshold, u0, reset, v_reset, surrogate,
                                               detach_reset, return_state, return_membrane)
    if fall_back(x, _library.RECURRENT_LIF_DEVICES, surrogate):
        return reference.recurrent_lif(
            x, V, beta, alpha=alpha, threshold=threshold, reset=reset, v_reset=v_reset,
            detach_reset=detach_reset, u0=u0, surrogate=surrogate,
            return_state=return_state, return_membrane=return_membrane,
        )
    _args.check_autograd("snnfast.recurrent_lif", (x, V, beta, alpha, threshold, u0),
                         instead="snnfast.reference.recurrent_lif")
    spikes, membrane, u_last = torch.ops.snnfast.recurrent_lif(
        x,
        V,
        _args.as_tensor(beta),
        _args.as_tensor(alpha),
        _args.as_tensor(threshold),
        None if u0 is None else _args.as_tensor(u0),
        reset,
        float(v_reset),
        bool(detach_reset),
        surrogate.name,
        surrogate.param,
    )
    return _args.results(spikes, u_last, membrane, return_state, return_membrane)


def _setup_context(ctx, inputs, output):
    x, V, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param = inputs
    spikes, membrane, _ = output
    # Gradients of unused outputs stay None instead of becoming [T, B, N] zeros.
    ctx.set_materialize_grads(False)
    ctx.x_dtype = x.dtype
    need_V, need_alpha = ctx.needs_input_grad[1], ctx.needs_input_grad[3]
    ctx.save_for_backward(
        spikes if need_V or need_alpha else None,  # o_{t-1} for g_V and g_alpha's recurrent part
        membrane,
        x if need_alpha else None,
        V, beta, alpha, threshold, u0,
    )
    ctx.options = (reset, v_reset, detach_reset, surrogate, surrogate_param)


def _backward(ctx, grad_spikes, grad_membrane, grad_u_last):
    spikes, membrane, x, V, beta, alpha, threshold, u0 = ctx.saved_tensors
    _args.check_first_order("snnfast.recurrent_lif", (grad_spikes, grad_membrane, grad_u_last, spikes, membrane,
                                                      x, V, beta, alpha, threshold, u0),
                            instead="snnfast.reference.recurrent_lif")
    output_mask = list(ctx.needs_input_grad[:6])
    if grad_spikes is None:
        grad_spikes = torch.zeros(membrane.shape, dtype=ctx.x_dtype, device=membrane.device)
    grads = torch.ops.snnfast.recurrent_lif_backward(
        grad_spikes, grad_membrane, grad_u_last, spikes, membrane, x, V, beta, alpha, threshold,
        u0, *ctx.options, output_mask,
    )
    return tuple(g if needed else None for g, needed in zip(grads, output_mask)) + (None,) * 5


def _fake_recurrent_lif(x, V, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate,
                        surrogate_param):
    acc = _args.acc_dtype(x.dtype)
    return (
        x.new_empty(x.shape),
        x.new_empty(x.shape, dtype=acc),
        x.new_empty(x.shape[1:], dtype=acc),
    )


def _fake_recurrent_lif_backward(grad_spikes, grad_membrane, grad_u_last, spikes, membrane, x, V,
                                 beta, alpha, threshold, u0, reset, v_reset, detach_reset,
                                 surrogate, surrogate_param, output_mask):
    def grad_like(needed, t, dtype=None):
        if needed and t is not None:
            return t.new_empty(t.shape, dtype=dtype or t.dtype)
        return membrane.new_empty((0,))

    return (
        grad_like(output_mask[0], membrane, grad_spikes.dtype),
        grad_like(output_mask[1], V),
        grad_like(output_mask[2], beta),
        grad_like(output_mask[3], alpha),
        grad_like(output_mask[4], threshold),
        grad_like(output_mask[5], u0),
    )


if _library.LOADED:
    torch.library.register_fake("snnfast::recurrent_lif")(_fake_recurrent_lif)
    torch.library.register_fake("snnfast::recurrent_lif_backward")(_fake_recurrent_lif_backward)
    torch.library.register_autograd("snnfast::recurrent_lif", _backward, setup_context=_setup_context)
