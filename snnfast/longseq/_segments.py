"""The fused LIF op run over a sequence in segments of time steps: forward keeping only the
state at the start of each segment, backward segment by segment from the last one, each
segment's membrane recomputed by the forward op from its saved starting state and the state
gradient handed to the segment before it through u0. Shared by lif_checkpointed and LinearLIF.

The recomputation repeats the forward op on the same input and the same starting state, so
it gives the forward's membrane bit for bit, and the segment's backward is the plain op's
backward over those steps: the gradients equal the plain op's up to the order in which the
parameter gradients of the segments are summed.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch

from ..ops import _args, _library

Bounds = List[Tuple[int, int]]


def check_device(x: torch.Tensor, name: str = "x") -> None:
    if x.device.type not in _library.LIF_DEVICES:
        raise RuntimeError(
            f"{name} is on {x.device}, which has no compiled snnfast kernel "
            f"(compiled for: {sorted(_library.LIF_DEVICES) or 'none'}); the memory-saving paths "
            "call the compiled op directly"
        )


def check_segment(segment) -> None:
    if isinstance(segment, bool) or not isinstance(segment, int) or segment < 1:
        raise ValueError(f"segment must be a positive int (time steps per segment), got {segment!r}")


def segment_bounds(T: int, segment: int) -> Bounds:
    """[t0, t1) of each segment; one empty segment for an empty sequence, so that the op
    still returns the final state."""
    if T == 0:
        return [(0, 0)]
    return [(t0, min(t0 + segment, T)) for t0 in range(0, T, segment)]


class LIFCall:
    """torch.ops.snnfast.lif and lif_backward with everything but the input and u0 bound."""

    def __init__(self, beta: torch.Tensor, alpha: torch.Tensor, threshold: torch.Tensor, options: tuple):
        self.beta, self.alpha, self.threshold = beta, alpha, threshold
        self.options = options  # (reset, v_reset, detach_reset, surrogate name, surrogate param)

    @staticmethod
    def options_of(reset, v_reset, detach_reset, surrogate) -> tuple:
        return (reset, float(v_reset), bool(detach_reset), surrogate.name, surrogate.param)

    def forward(self, x: torch.Tensor, u0: Optional[torch.Tensor]):
        """(spikes, membrane, u_last) of the op."""
        return torch.ops.snnfast.lif(x, self.beta, self.alpha, self.threshold, u0, *self.options)

    def backward(self, grad_spikes, grad_membrane, grad_u_last, membrane, x, u0, output_mask):
        """(grad_x, grad_beta, grad_alpha, grad_threshold, grad_u0) of the op."""
        return torch.ops.snnfast.lif_backward(
            grad_spikes, grad_membrane, grad_u_last, membrane, x, self.beta, self.alpha,
            self.threshold, u0, *self.options, list(output_mask),
        )


def forward(call: LIFCall, current: Callable[[int, int], torch.Tensor], bounds: Bounds,
            u0: Optional[torch.Tensor], state_shape: Sequence[int], dtype: torch.dtype,
            keep_membrane: bool = False):
    """Runs the op segment by segment on current(t0, t1), the input of steps [t0, t1).

    Returns (spikes [T, *state_shape] in dtype, states [segments - 1, *state_shape]: the state
    at the start of every segment but the first, u_last, membrane or None)."""
    device = call.beta.device
    T = bounds[-1][1]
    spikes = torch.empty((T, *state_shape), dtype=dtype, device=device)
    states = torch.empty((len(bounds) - 1, *state_shape), dtype=_args.acc_dtype(dtype), device=device)
    membranes = []
    state = u0
    for k, (t0, t1) in enumerate(bounds):
        spikes_k, membrane_k, u_last = call.forward(current(t0, t1), state)
        spikes[t0:t1] = spikes_k
        if keep_membrane:
            membranes.append(membrane_k)
        del spikes_k, membrane_k
        if k + 1 < len(bounds):
            states[k] = u_last
            state = states[k]
    membrane = torch.cat(membranes) if keep_membrane else None
    return spikes, states, u_last, membrane


def backward(call: LIFCall, current: Callable[[int, int], torch.Tensor], bounds: Bounds,
             u0: Optional[torch.Tensor], states: Optional[torch.Tensor],
             grad_spikes: Optional[torch.Tensor], grad_membrane: Optional[torch.Tensor],
             grad_u_last: Optional[torch.Tensor], needs: Sequence[bool],
             take_grad_x: Callable[[int, int, torch.Tensor], None], dtype: torch.dtype,
             membrane: Optional[torch.Tensor] = None):
    """BPTT over the segments, last first. needs = which of (x, beta, alpha, threshold, u0)
    need a gradient; take_grad_x(t0, t1, grad) receives the input gradient of each segment.
    With membrane (the saved trace) nothing is recomputed: the input is then asked for only
    when alpha needs its gradient.

    Returns the gradients of (beta, alpha, threshold, u0), None where not needed."""
    need_x, need_beta, need_alpha, need_threshold, need_u0 = needs
    totals = [None, None, None, None]
    grad_state = grad_u_last
    for k in reversed(range(len(bounds))):
        t0, t1 = bounds[k]
        start = u0 if k == 0 else states[k - 1]
        x = current(t0, t1) if (membrane is None or need_alpha) else None
        membrane_k = membrane[t0:t1] if membrane is not None else call.forward(x, start)[1]
        if grad_spikes is not None:
            grad_spikes_k = grad_spikes[t0:t1]
        else:
            grad_spikes_k = torch.zeros(membrane_k.shape, dtype=dtype, device=membrane_k.device)
        mask = (need_x, need_beta, need_alpha, need_threshold, need_u0 if k == 0 else True)
        grad_x, *grad_params, grad_start = call.backward(
            grad_spikes_k, None if grad_membrane is None else grad_membrane[t0:t1], grad_state,
            membrane_k, x if need_alpha else None, start, mask,
        )
        del x, membrane_k, grad_spikes_k
        for i, (grad, needed) in enumerate(zip(grad_params, mask[1:4])):
            if needed:
                totals[i] = grad if totals[i] is None else totals[i] + grad
        if need_x:
            take_grad_x(t0, t1, grad_x)
        del grad_x
        grad_state = grad_start
    if need_u0 and u0 is not None:
        totals[3] = grad_state
    return totals
