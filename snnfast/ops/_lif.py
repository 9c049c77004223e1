"""snnfast.lif: the fused multi-step LIF op, with its autograd and fake (meta) kernels.

The op runs in C++ (torch.ops.snnfast.lif / lif_backward); this file only checks arguments,
turns floats into tensors and tells autograd which gradients to ask for.
"""
from __future__ import annotations

import warnings

import torch

from . import _args, _library, reference
from .. import surrogate as surrogates


def lif(
    x: torch.Tensor,
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
    """Runs T steps of leaky integrate-and-fire neurons over x of shape [T, B, *F].

    h_t = beta * u_{t-1} + alpha * x_t; o_t = H(h_t - threshold); u_t = reset(h_t, o_t),
    as shared/design/neuron-spec.md defines, with BPTT through `surrogate` in the backward pass.

    Args:
        x: input current [T, B, *F], float16, bfloat16, float32 or float64.
        beta: decay of the membrane: a float, or a per-layer (0-d), per-channel (F[0],) or
            per-neuron F tensor.
        alpha: scale of the input, shaped like beta.
        threshold: firing threshold, shaped like beta.
        reset: "hard" (to v_reset), "soft" (subtract threshold) or "none".
        v_reset: the membrane after a hard reset (only with reset="hard"; another value than
            0 with a soft or no reset, which ignore it, is an error).
        detach_reset: cut the reset's path in the backward pass.
        u0: initial membrane: None (zero), a float, a per-neuron F tensor (the learnable IMP)
            or a state broadcastable to [B, *F].
        surrogate: "rectangle", "triangle", "sigmoid", "atan" or an object of snnfast.surrogate
            (a subclass that defines its own derivative runs in snnfast.reference.lif, with a
            warning: the kernels know the four by name).
        return_state: also return u_T, [B, *F], differentiable (to run a sequence in chunks).
        return_membrane: also return the membrane trace h, [T, B, *F].

    Returns:
        The spikes (x's dtype and shape), or a tuple (spikes, [u_T], [h]) with the flags.
        u_T and h are float32 for float16/bfloat16 input (the arithmetic precision).

    Gradients: first-order reverse mode (backward, torch.autograd.grad, also under
    torch.vmap). Double backward, forward-mode AD and torch.func.grad/jacrev raise a
    RuntimeError that points to snnfast.reference.lif, which supports them.
    """
    surrogate = _args.check_lif_args(x, beta, alpha, threshold, u0, reset, v_reset, surrogate,
                                     detach_reset, return_state, return_membrane)
    if fall_back(x, _library.LIF_DEVICES, surrogate):
        return reference.lif(
            x, beta, alpha=alpha, threshold=threshold, reset=reset, v_reset=v_reset,
            detach_reset=detach_reset, u0=u0, surrogate=surrogate,
            return_state=return_state, return_membrane=return_membrane,
        )
    _args.check_autograd("snnfast.lif", (x, beta, alpha, threshold, u0))
    spikes, membrane, u_last = torch.ops.snnfast.lif(
        x,
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


_warned = set()


def fall_back(x: torch.Tensor, devices, surrogate) -> bool:
    """Whether an op runs in the reference instead of its kernel (warning once per cause):
    where no kernel is compiled for x's device, or for a surrogate the kernels do not know."""
    if x.device.type not in devices:
        cause = (x.device.type, f"no compiled LIF kernel for {x.device.type} tensors. Build the "
                 "extension (see README.md)")
    elif not surrogates.in_kernel(surrogate):
        cause = (type(surrogate), f"the surrogate {type(surrogate).__qualname__} defines its own "
                 "derivative, which the compiled kernels (rectangle, triangle, sigmoid, atan by "
                 "name) do not compute")
    else:
        return False
    if cause[0] not in _warned:
        _warned.add(cause[0])
        warnings.warn(f"snnfast: {cause[1]}; using the pure-PyTorch reference loop, which gives "
                      "the same results much more slowly.", stacklevel=3)
    return True


def _setup_context(ctx, inputs, output):
    x, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param = inputs
    _, membrane, _ = output
    # Gradients of unused outputs stay None instead of becoming [T, B, *F] zeros.
    ctx.set_materialize_grads(False)
    ctx.x_dtype = x.dtype
    ctx.save_for_backward(membrane, x if ctx.needs_input_grad[2] else None, beta, alpha, threshold, u0)
    ctx.options = (reset, v_reset, detach_reset, surrogate, surrogate_param)


def _backward(ctx, grad_spikes, grad_membrane, grad_u_last):
    membrane, x, beta, alpha, threshold, u0 = ctx.saved_tensors
    _args.check_first_order("snnfast.lif", (grad_spikes, grad_membrane, grad_u_last, membrane, x, beta,
                                            alpha, threshold, u0))
    output_mask = list(ctx.needs_input_grad[:5])
    if grad_spikes is None:
        grad_spikes = torch.zeros(membrane.shape, dtype=ctx.x_dtype, device=membrane.device)
    grads = torch.ops.snnfast.lif_backward(
        grad_spikes, grad_membrane, grad_u_last, membrane, x, beta, alpha, threshold, u0,
        *ctx.options, output_mask,
    )
    return tuple(g if needed else None for g, needed in zip(grads, output_mask)) + (None,) * 5


def _fake_lif(x, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param):
    acc = _args.acc_dtype(x.dtype)
    return (
        x.new_empty(x.shape),
        x.new_empty(x.shape, dtype=acc),
        x.new_empty(x.shape[1:], dtype=acc),
    )


def _fake_lif_backward(grad_spikes, grad_membrane, grad_u_last, membrane, x, beta, alpha,
                       threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param,
                       output_mask):
    def grad_like(needed, t, dtype=None):
        if needed and t is not None:
            return t.new_empty(t.shape, dtype=dtype or t.dtype)
        return membrane.new_empty((0,))

    return (
        grad_like(output_mask[0], membrane, grad_spikes.dtype),
        grad_like(output_mask[1], beta),
        grad_like(output_mask[2], alpha),
        grad_like(output_mask[3], threshold),
        grad_like(output_mask[4], u0),
    )


if _library.LOADED:
    torch.library.register_fake("snnfast::lif")(_fake_lif)
    torch.library.register_fake("snnfast::lif_backward")(_fake_lif_backward)
    torch.library.register_autograd("snnfast::lif", _backward, setup_context=_setup_context)
