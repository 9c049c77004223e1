"""The neuron of docs/neuron.md as a plain PyTorch loop over time.

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


def _run(x, V, n: _args.Neuron, detach_recurrent: bool = False):
    """The loop over time shared by lif (V is None) and recurrent_lif."""
    acc = _args.acc_dtype(x.dtype)
    F = tuple(x.shape[2:])
    beta = _broadcast(n.beta, F, acc, "beta")
    alpha = _broadcast(n.alpha, F, acc, "alpha")
    threshold = _broadcast(n.threshold, F, acc, "threshold")
    V = None if V is None else V.to(acc)

    u = torch.zeros(x.shape[1:], dtype=acc, device=x.device)
    if n.u0 is not None:
        u = u + (n.u0.to(acc) if isinstance(n.u0, torch.Tensor) else float(n.u0))
    o = None  # o_0 = 0: no recurrent input at the first step
    spikes, membrane = [], []
    for x_t in x.to(acc).unbind(0):
        if V is None or o is None:
            current = x_t
        else:  # detach_recurrent: the gradient reaches V but stops at o_{t-1}
            current = x_t + (o.detach() if detach_recurrent else o) @ V.t()
        o, h, u = lif_step(u, current, beta, alpha, threshold, n.reset, n.v_reset, n.detach_reset,
                           n.surrogate)
        spikes.append(o)
        membrane.append(h)

    empty = x.new_empty(x.shape, dtype=acc)
    spikes = (torch.stack(spikes) if spikes else empty).to(x.dtype)
    membrane = torch.stack(membrane) if membrane else empty
    return _args.results(spikes, u, membrane, n.return_state, n.return_membrane)


@_args.neuron_signature
def lif(x: torch.Tensor, beta, **neuron):
    """Same arguments and results as snnfast.lif."""
    return _run(x, None, _args.neuron_args("snnfast.reference.lif", x, None, beta, neuron))


@_args.neuron_signature
def recurrent_lif(x: torch.Tensor, V: torch.Tensor, beta, *, detach_recurrent: bool = False, **neuron):
    """Same arguments and results as snnfast.recurrent_lif: lif with I_t = x_t + o_{t-1} V^T."""
    _args.check_flag(detach_recurrent, "detach_recurrent")
    return _run(x, V, _args.neuron_args("snnfast.reference.recurrent_lif", x, V, beta, neuron),
                detach_recurrent)
