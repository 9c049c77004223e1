"""The neuron of shared/design/neuron-spec.md as a plain PyTorch loop over time.

This is the oracle of the tests and the fallback where no compiled kernel exists. It follows
the spec line by line and lets autograd derive the backward pass: only the spike's surrogate
derivative is written by hand.
"""
from __future__ import annotations

import torch

from . import _args


class _Spike(torch.autograd.Function):
    """o = H(z) with H(0) = 1, z = h - threshold; backward: g * s(z), itself differentiable
    (double backward). forward and setup_context apart, so that torch.func's transforms
    (grad, jacrev, hessian, vmap) accept it; the tangent of forward-mode AD is 0, H's derivative."""

    generate_vmap_rule = True

    @staticmethod
    def forward(z, surrogate):
        return (z >= 0).to(z.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, surrogate = inputs
        ctx.save_for_backward(z)
        ctx.surrogate = surrogate

    @staticmethod
    def jvp(ctx, z_tangent, surrogate_tangent):
        return torch.zeros_like(z_tangent)


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


def lif_step(u, current, beta, alpha, threshold, reset, v_reset, detach_reset, surrogate):
    """One time step of the neuron from the state u_{t-1} and the input current I_t.

    beta, alpha and threshold broadcast over u (floats or tensors shaped by _broadcast);
    surrogate is an object of snnfast.surrogate. Returns (o_t, h_t, u_t).
    """
    h = beta * u + alpha * current
    o = _Spike.apply(h - threshold, surrogate)
    o_reset = o.detach() if detach_reset else o
    if reset == "hard":
        u = o_reset * v_reset + (1 - o_reset) * h
    elif reset == "soft":
        u = h - threshold * o_reset
    else:
        u = h
    return o, h, u


def _run(x, V, beta, alpha, threshold, reset, v_reset, detach_reset, u0, surrogate,
         return_state, return_membrane):
    """The loop over time shared by lif (V is None) and recurrent_lif."""
    acc = _args.acc_dtype(x.dtype)
    F = tuple(x.shape[2:])
    beta = _broadcast(beta, F, acc, "beta")
    alpha = _broadcast(alpha, F, acc, "alpha")
    threshold = _broadcast(threshold, F, acc, "threshold")
    V = None if V is None else V.to(acc)

    u = torch.zeros(x.shape[1:], dtype=acc, device=x.device)
    if u0 is not None:
        u = u + (u0.to(acc) if isinstance(u0, torch.Tensor) else float(u0))
    o = None  # o_0 = 0: no recurrent input at the first step
    spikes, membrane = [], []
    for x_t in x.to(acc).unbind(0):
        current = x_t if V is None or o is None else x_t + o @ V.t()
        o, h, u = lif_step(u, current, beta, alpha, threshold, reset, v_reset, detach_reset, surrogate)
        spikes.append(o)
        membrane.append(h)

    empty = x.new_empty(x.shape, dtype=acc)
    spikes = (torch.stack(spikes) if spikes else empty).to(x.dtype)
    membrane = torch.stack(membrane) if membrane else empty
    return _args.results(spikes, u, membrane, return_state, return_membrane)


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
    surrogate = _args.check_lif_args(x, beta, alpha, threshold, u0, reset, v_reset, surrogate,
                                     detach_reset, return_state, return_membrane)
    return _run(x, None, beta, alpha, threshold, reset, v_reset, detach_reset, u0, surrogate,
                return_state, return_membrane)


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
    """Same arguments and results as snnfast.recurrent_lif: lif with I_t = x_t + o_{t-1} V^T."""
    surrogate = _args.check_recurrent_lif_args(x, V, beta, alpha, threshold, u0, reset, v_reset, surrogate,
                                               detach_reset, return_state, return_membrane)
    return _run(x, V, beta, alpha, threshold, reset, v_reset, detach_reset, u0, surrogate,
                return_state, return_membrane)
