"""snnfast.lif: the fused multi-step LIF op.

The op runs in C++ (torch.ops.snnfast.lif / lif_backward); this file only documents it and
prepares its arguments; its autograd and fake kernels are those of _fused.py.
"""
from __future__ import annotations

import torch

from . import _args, _fused, _library, reference


@_args.neuron_signature
def lif(x: torch.Tensor, beta, *, return_events: bool = False, **neuron):
    """Runs T steps of leaky integrate-and-fire neurons over x of shape [T, B, *F].

    h_t = beta * u_{t-1} + alpha * x_t; o_t = H(h_t - threshold); u_t = reset(h_t, o_t),
    as docs/neuron.md defines, with BPTT through `surrogate` in the backward pass.

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
        return_events: also return the spikes as events, the last element of the tuple
            (snnfast.Events of the spikes as [T, B, N], N = prod(F): per step and sample the
            neurons that fired, ascending), emitted by the kernel from its own pass (CPU and
            CUDA). Where F is one dimension the spikes also carry them (attach_events), so
            that snnfast.event_linear or snnfast.nn.LinearLIF on these spikes takes them
            instead of converting the spikes. Gradients are unchanged (the op then keeps the
            membrane trace as lif does). Where the reference runs instead of the kernel (a
            surrogate of one's own) the spikes are converted (snnfast.to_events); on a device
            without the event ops it raises a ValueError.

    Returns:
        The spikes (x's dtype and shape), or a tuple (spikes, [u_T], [h], [events]) with the
        flags. u_T and h are float32 for float16/bfloat16 input (the arithmetic precision).

    Gradients: first-order reverse mode (backward, torch.autograd.grad, also under
    torch.vmap). Double backward, forward-mode AD and torch.func.grad/jacrev raise a
    RuntimeError that points to snnfast.reference.lif, which supports them.
    """
    _args.check_flag(return_events, "return_events")
    neuron = _args.neuron_args("snnfast.lif", x, None, beta, neuron)
    if return_events:
        return _fused.call_with_events("lif", _library.LIF_DEVICES, _library.LIF_EVENTS_DEVICES, reference.lif,
                                       x, None, neuron)
    return _fused.call("lif", _library.LIF_DEVICES, reference.lif, x, None, neuron)


if _library.LOADED:
    _fused.register("lif")
    _fused.register_events("lif")
