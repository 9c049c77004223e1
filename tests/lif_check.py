"""Runs snnfast.lif and the reference on the same inputs and the same random grad_out, and
compares the outputs and every gradient."""
from __future__ import annotations

import torch

import snnfast
from snnfast import reference

TOLERANCES = {
    torch.float64: dict(rtol=1e-10, atol=1e-10),
    torch.float32: dict(rtol=1e-4, atol=1e-5),
    torch.bfloat16: dict(rtol=2e-2, atol=2e-2),
    torch.float16: dict(rtol=5e-3, atol=5e-3),
}


def make_input(shape, dtype, device, generator=None):
    # Currents around the threshold, so that neurons both fire and stay silent.
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * 0.9 + 0.5
    return x.to(device=device, dtype=dtype)


def make_param(kind: str, F: tuple, device, low: float, high: float):
    """A parameter of the given kind, drawn uniformly from [low, high)."""
    if kind == "float":
        return float(torch.empty(()).uniform_(low, high))
    shape = {"layer": (), "channel": (F[0],), "neuron": F}[kind]
    value = torch.empty(shape, dtype=torch.float64).uniform_(low, high)
    return value.to(device).requires_grad_(True)


def make_u0(kind: str, B: int, F: tuple, device):
    if kind == "none":
        return None
    if kind == "float":
        return float(torch.randn(()))
    shape = {"neuron": F, "sample": (B,) + F, "broadcast": (1,) + F}[kind]
    return (0.5 * torch.randn(shape, dtype=torch.float64)).to(device).requires_grad_(True)


def _leaves(args: dict):
    return {k: v for k, v in args.items() if isinstance(v, torch.Tensor) and v.requires_grad}


def run(fn, x, args: dict, grads_out, return_state=True, return_membrane=True):
    """Outputs and the gradients of every tensor that requires grad, as one flat dict."""
    out = fn(x, **args, return_state=return_state, return_membrane=return_membrane)
    out = out if isinstance(out, tuple) else (out,)
    names = ["spikes"] + (["u_last"] if return_state else []) + (["membrane"] if return_membrane else [])
    results = dict(zip(names, out))
    inputs = {"x": x, **_leaves(args)}
    loss = sum((o.double() * g).sum() for o, g in zip(out, grads_out))
    grads = torch.autograd.grad(loss, list(inputs.values()), allow_unused=True)
    results.update({f"grad_{k}": g for k, g in zip(inputs, grads)})
    return results


def compare(x, args: dict, dtype=None, return_state=True, return_membrane=True, seed=None):
    """Runs snnfast.lif and reference.lif with args (beta, alpha, ... as keywords) on x cast to
    dtype, and asserts every output and gradient agree within the dtype's tolerance."""
    dtype = dtype or x.dtype
    x = x.detach().to(dtype).requires_grad_(True)
    generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(1 << 30, ())))
    shapes = [x.shape] + ([x.shape[1:]] if return_state else []) + ([x.shape] if return_membrane else [])
    grads_out = [torch.randn(s, generator=generator, dtype=torch.float64).to(x.device) for s in shapes]
    got = run(snnfast.lif, x, args, grads_out, return_state, return_membrane)
    want = run(reference.lif, x, args, grads_out, return_state, return_membrane)
    assert got.keys() == want.keys()
    for name in want:
        g, w = got[name], want[name]
        assert (g is None) == (w is None), name
        if w is None:
            continue
        assert g.dtype == w.dtype and g.shape == w.shape, (name, g.dtype, w.dtype, g.shape, w.shape)
        assert torch.isfinite(g).all(), f"{name}: the kernel left unwritten (NaN) or non-finite elements"
        if name == "spikes":
            assert ((g == 0) | (g == 1)).all()
        torch.testing.assert_close(g.double(), w.double(), **TOLERANCES[dtype], msg=lambda m: f"{name}: {m}")
    return got
