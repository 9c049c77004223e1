"""snnfast.recurrent_lif: the fused recurrent LIF op.

The op runs in C++ (torch.ops.snnfast.recurrent_lif / recurrent_lif_backward, and
recurrent_lif_events for return_events), time loop included; this file only documents it and prepares its arguments; its autograd and fake
kernels are those of _fused.py.
"""
from __future__ import annotations

import torch

from . import _args, _fused, _library, reference


@_args.neuron_signature
def recurrent_lif(x: torch.Tensor, V: torch.Tensor, beta, *, detach_recurrent: bool = False,
                  return_events: bool = False, **neuron):
    """Runs T steps of recurrently connected LIF neurons over x of shape [T, B, N].

    I_t = x_t + o_{t-1} V^T (o_0 = 0), then the neuron of snnfast.lif:
    h_t = beta * u_{t-1} + alpha * I_t; o_t = H(h_t - threshold); u_t = reset(h_t, o_t),
    as docs/neuron.md defines, with BPTT through `surrogate` in the backward pass.

    Args:
        x: input current [T, B, N], float16, bfloat16, float32 or float64.
        V: recurrent weights [N, N] (learnable): V[n, j] is the weight from neuron j to n.
        detach_recurrent: truncate BPTT through the recurrent spikes only: the gradient stops
            at o_{t-1} in I_t = x_t + o_{t-1} V^T, while V still gets its gradient
            (sum_t g_I_t^T o_{t-1}); the gradient through the membrane is kept.
        beta, alpha, threshold, reset, v_reset, detach_reset, u0, surrogate, return_state,
            return_membrane: as in snnfast.lif.
        return_events: also return the spikes as events, the last element of the tuple, as
            snnfast.lif does (snnfast.Events of the spikes [T, B, N]: per step and sample the
            neurons that fired, ascending; the spikes also carry them, for a next
            snnfast.event_linear or snnfast.nn.LinearLIF to take). On the CPU the kernel's
            steps emit them from their own pass (torch.ops.snnfast.recurrent_lif_events); on
            CUDA the op converts the spikes its steps wrote (one more pass over them, in the
            op), and where the reference runs instead of the kernel (a surrogate of one's
            own) the spikes are converted (snnfast.to_events). Gradients are unchanged (the
            op then keeps the membrane trace as recurrent_lif does); on a device without the
            event ops it raises a ValueError.

    Returns:
        The spikes (x's dtype and shape), or a tuple (spikes, [u_T], [h], [events]) with the flags.
        u_T and h are float32 for float16/bfloat16 input (the arithmetic precision, in which
        the op also computes o_{t-1} V^T).
    """
    _args.check_flag(detach_recurrent, "detach_recurrent")
    _args.check_flag(return_events, "return_events")
    neuron = _args.neuron_args("snnfast.recurrent_lif", x, V, beta, neuron)
    if return_events:
        return _fused.call_with_events("recurrent_lif", _library.RECURRENT_LIF_DEVICES,
                                       _library.RECURRENT_LIF_EVENTS_DEVICES, reference.recurrent_lif, x, V, neuron,
                                       detach_recurrent=detach_recurrent)
    return _fused.call("recurrent_lif", _library.RECURRENT_LIF_DEVICES, reference.recurrent_lif, x, V, neuron,
                       detach_recurrent=detach_recurrent)


if _library.LOADED:
    _fused.register("recurrent_lif")
    _fused.register_events("recurrent_lif")
