"""The neuron of shared/design/neuron-spec.md as a plain PyTorch loop over time.

This is the oracle of the tests and the fallback where no compiled kernel exists. It follows
the spec line by line and lets autograd derive the backward pass: only the spike's surrogate
derivative is written by hand.
"""
from __future__ import annotations

import torch

from . import _args


class _Spike(torch.autograd.Function):
    """o = H(z) with H(0) = 1, z = h - threshold; backward: g * s(z)."""

    @staticmethod
    def forward(ctx, z, surrogate):
        ctx.save_for_backward(z)
        ctx.surrogate = surrogate
        return (z >= 0).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * ctx.surrogate.derivative(z), None


def _broadcast(value, F: tuple, dtype: torch.dtype, name: str):
    """A layer, channel or neuron parameter shaped to broadcast over [B, *F]."""
    if not isinstance(value, torch.Tensor):
        return float(value)
    kind = _args.param_kind(value, F, name)
    value = value.to(dtype)
    if kind == "layer":
        return value.reshape(())
    if kind == "channel":
        return value.view((F[0],) + (1,) * (len(F) - 1))
    return value


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
    """Same arguments and results as snnfast.lif."""
    surrogate = _args.check_lif_args(x, beta, alpha, threshold, u0, reset, v_reset, surrogate)
    acc = _args.acc_dtype(x.dtype)
    F = tuple(x.shape[2:])
    beta = _broadcast(beta, F, acc, "beta")
    alpha = _broadcast(alpha, F, acc, "alpha")
    threshold = _broadcast(threshold, F, acc, "threshold")

    u = torch.zeros(x.shape[1:], dtype=acc, device=x.device)
    if u0 is not None:
        u = u + (u0.to(acc) if isinstance(u0, torch.Tensor) else float(u0))
    spikes, membrane = [], []
    for x_t in x.to(acc).unbind(0):
        h = beta * u + alpha * x_t
        o = _Spike.apply(h - threshold, surrogate)
        o_reset = o.detach() if detach_reset else o
        if reset == "hard":
            u = o_reset * v_reset + (1 - o_reset) * h
        elif reset == "soft":
            u = h - threshold * o_reset
        else:
            u = h
        spikes.append(o)
        membrane.append(h)

    empty = x.new_empty(x.shape, dtype=acc)
    spikes = (torch.stack(spikes) if spikes else empty).to(x.dtype)
    membrane = torch.stack(membrane) if membrane else empty
    return _args.results(spikes, u, membrane, return_state, return_membrane)

