"""Direct calls of the registered ops (torch.ops.snnfast.*) with one bad argument each.

The kernels read every tensor through a raw pointer, so a wrongly sized optional tensor used
to be read out of bounds: lif_backward and recurrent_lif_backward segfaulted at T, B, N = 50,
64, 4096 with grad_u_last of shape (1,), grad_membrane of shape (1, 1, 1) or x of shape (1,)
with the alpha gradient asked for, and returned garbage (values like 1e21) at small sizes.
Every argument now fails with a RuntimeError that starts with the op's name and names the
argument; a good call still matches snnfast.reference.
"""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
import torch

from snnfast import _library, reference, surrogate

pytestmark = pytest.mark.skipif(not _library.LOADED, reason="snnfast._C is not built")

T, B, N = 3, 2, 5
F = (2, 3)  # lif: a two-dimensional neuron shape; the recurrent op is [T, B, N]
OPTIONS = dict(reset="hard", v_reset=0.0, detach_reset=False, surrogate="sigmoid",
               surrogate_param=4.0, detach_recurrent=False)
OPS = ("lif", "lif_backward", "recurrent_lif", "recurrent_lif_backward")


def schema_arguments(op: str):
    return getattr(torch.ops.snnfast, op).default._schema.arguments


def call(op: str, args: dict):
    """Calls torch.ops.snnfast.<op> with args given by the names in its schema."""
    return getattr(torch.ops.snnfast, op)(*(args[a.name] for a in schema_arguments(op)))


def good_args(op: str, device="cpu", dtype=torch.float32, seed=0):
    """Valid arguments of op, every optional tensor given, every gradient asked for."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, scale=1.0, shift=0.0):
        return (shift + scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(device, dtype)

    recurrent = op.startswith("recurrent")
    neurons = (N,) if recurrent else F
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = randn(T, B, *neurons, scale=0.9, shift=0.5)
    params = dict(
        beta=(0.5 + 0.4 * torch.rand(neurons[0], generator=g, dtype=torch.float64)).to(device),
        alpha=(0.8 + 0.4 * torch.rand(neurons, generator=g, dtype=torch.float64)).to(device),
        threshold=torch.tensor(1.0, dtype=torch.float64),  # a host scalar: valid on any device
        u0=(0.3 * torch.randn((B, *neurons), generator=g, dtype=torch.float64)).to(device),
    )
    args = dict(x=x, **params, **OPTIONS)
    if recurrent:
        args["V"] = randn(N, N, scale=N**-0.5)
    if not op.endswith("backward"):
        return args
    spikes, membrane, _ = call(op.removesuffix("_backward"), args)
    args.update(
        grad_spikes=randn(T, B, *neurons),
        grad_membrane=randn(T, B, *neurons).to(acc),
        grad_u_last=randn(B, *neurons).to(acc),
        membrane=membrane,
        output_mask=[True] * (6 if recurrent else 5),
    )
    if recurrent:
        args["spikes"] = spikes
    return args


def raises(op: str, name: str, args: dict):
    """The call fails with a RuntimeError that starts with the op and names the argument."""
    with pytest.raises(RuntimeError, match=rf"^snnfast\.{op}: .*\b{re.escape(name)}\b"):
        call(op, args)


# (op, argument, what to do to it): each case makes exactly one argument wrong.
SEQUENCE = {"lif": "x", "recurrent_lif": "x", "lif_backward": "membrane",
            "recurrent_lif_backward": "membrane"}


def tensor_arguments(op: str):
    return [a.name for a in schema_arguments(op) if "Tensor" in str(a.type)]


def bad_cases():
    cases = []
    for op in OPS:
        cases += [(op, name, how) for name in tensor_arguments(op) for how in ("shape", "dtype")]
        if op.endswith("backward"):
            # Read in the forward's input dtype (float32 here), or in its arithmetic dtype.
            readers = ["x", "membrane"] + (["spikes"] if op.startswith("recurrent") else [])
            cases += [(op, name, "float64") for name in readers]
            cases += [(op, name, "missing") for name in readers if name != "membrane"]
            cases += [(op, "membrane", "non-contiguous")]
        cases += [(op, "reset", "bogus"), (op, "surrogate", "bogus"),
                  (op, "surrogate_param", 0.0), (op, "surrogate_param", float("nan"))]
    return cases


def spoil(op: str, name: str, how, args: dict) -> dict:
    value = args[name]
    if how == "shape":
        # The crash report's shapes where they apply; (7,) for a parameter (neither per layer,
        # per channel nor per neuron) and for u0 (does not broadcast to the state).
        shape = {"grad_u_last": (1,), "grad_membrane": (1, 1, 1), "x": (1,), "spikes": (1,),
                 "grad_spikes": (T, B + 1, *value.shape[2:]), "membrane": (T, B),
                 "V": (N, N + 1)}.get(name, (7,))
        if name == "x" and not op.endswith("backward"):
            shape = (T, B) if op == "lif" else (T, B, N, 1)
        args[name] = torch.ones(shape, dtype=value.dtype, device=value.device)
    elif how == "dtype":
        # Parameters and u0 may be integers; no tensor argument may be bool.
        args[name] = value.to(torch.bool if name in ("beta", "alpha", "threshold", "u0") else torch.int32)
    elif how == "float64":
        args[name] = value.double()
    elif how == "missing":
        args[name] = None
    elif how == "non-contiguous":
        args[name] = value.transpose(0, 1).contiguous().transpose(0, 1)
    else:
        args[name] = how
    return args


@pytest.mark.parametrize("op, name, how", bad_cases(), ids=str)
def test_bad_argument_raises_naming_it(op, name, how):
    raises(op, name, spoil(op, name, how, good_args(op)))


def test_every_tensor_argument_has_a_case():
    """A new tensor argument of an op must come with its own bad-argument cases."""
    covered = {(op, name) for op, name, how in bad_cases() if how == "shape"}
    assert covered == {(op, name) for op in OPS for name in tensor_arguments(op)}
    assert ("recurrent_lif_backward", "spikes") in covered and ("lif", "u0") in covered


@pytest.mark.skipif(not torch.cuda.is_available() or "cuda" not in _library.LIF_DEVICES,
                    reason="needs a CUDA GPU and the CUDA build")
@pytest.mark.parametrize("op", OPS)
def test_tensor_on_another_device_raises_naming_it(op):
    """Each tensor on the CPU while the rest is on the GPU. A 0-d CPU parameter is a scalar
    on any device: it is made a one-element tensor, which is not. With the op's sequence
    itself moved, every other tensor is on another device than it: the message names one."""
    for name in tensor_arguments(op):
        args = good_args(op, device="cuda")
        args[name] = (args[name].reshape(1) if args[name].dim() == 0 else args[name]).cpu()
        raises(op, "" if name == SEQUENCE[op] else name, args)


# ---- a good call still computes what the reference computes --------------------------------

def reference_outputs(op: str, args: dict):
    """(spikes, u_last, membrane) of the reference and, through its autograd, the gradients of
    (x, [V], beta, alpha, threshold, u0) for the op's grad_spikes, grad_u_last, grad_membrane."""
    recurrent = op.startswith("recurrent")
    leaves = {k: args[k].detach().double().requires_grad_()
              for k in (["x", "V"] if recurrent else ["x"]) + ["beta", "alpha", "threshold", "u0"]}
    run = reference.recurrent_lif if recurrent else reference.lif
    positional = [leaves["x"]] + ([leaves["V"]] if recurrent else []) + [leaves["beta"]]
    spikes, u_last, membrane = run(
        *positional, alpha=leaves["alpha"], threshold=leaves["threshold"], u0=leaves["u0"],
        reset=OPTIONS["reset"], v_reset=OPTIONS["v_reset"], detach_reset=OPTIONS["detach_reset"],
        surrogate=surrogate.Sigmoid(OPTIONS["surrogate_param"]), return_state=True,
        return_membrane=True,
    )
    return (spikes, u_last, membrane), leaves


@pytest.mark.parametrize("op", ["lif", "recurrent_lif"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_good_call_matches_reference(op, dtype, monkeypatch):
    monkeypatch.setenv("SNNFAST_POISON", "1")
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    args = good_args(op + "_backward", dtype=dtype, seed=3)
    spikes, membrane, u_last = call(op, args)
    (ref_spikes, ref_u_last, ref_membrane), leaves = reference_outputs(op, args)
    torch.testing.assert_close(spikes.double(), ref_spikes.detach(), **tol)
    torch.testing.assert_close(membrane.double(), ref_membrane.detach(), **tol)
    torch.testing.assert_close(u_last.double(), ref_u_last.detach(), **tol)

    grads = call(op + "_backward", args)
    loss = ((ref_spikes * args["grad_spikes"].double()).sum()
            + (ref_membrane * args["grad_membrane"].double()).sum()
            + (ref_u_last * args["grad_u_last"].double()).sum())
    expected = torch.autograd.grad(loss, list(leaves.values()))
    assert len(grads) == len(expected)
    for name, got, want in zip(leaves, grads, expected):
        torch.testing.assert_close(got.double(), want, **tol, msg=lambda m: f"grad of {name}: {m}")


# ---- the crash report's exact cases, in a subprocess ----------------------------------------

CRASH_SCRIPT = textwrap.dedent("""
    import torch, snnfast
    ops = torch.ops.snnfast
    T, B, N = 50, 64, 4096
    x, g, membrane = torch.randn(T, B, N), torch.randn(T, B, N), torch.randn(T, B, N)
    spikes, V = (x > 0).float(), torch.randn(N, N) / N**0.5
    one = torch.tensor(0.9, dtype=torch.float64)
    options = ("hard", 0.0, False, "rectangle", 1.0)
    lif = lambda grad_membrane=None, grad_u_last=None, x=x: ops.lif_backward(
        g, grad_membrane, grad_u_last, membrane, x, one, one, one, None, *options, [True] * 5)
    recurrent = lambda grad_membrane=None, grad_u_last=None, x=x: ops.recurrent_lif_backward(
        g, grad_membrane, grad_u_last, spikes, membrane, x, V, one, one, one, None, *options,
        False, [True] * 6)  # detach_recurrent
    for op in (lif, recurrent):
        for name, bad in (("grad_u_last", torch.ones(1)), ("grad_membrane", torch.ones(1, 1, 1)),
                          ("x", torch.ones(1))):
            try:
                op(**{name: bad})
                print(name, "returned", sep="\t", flush=True)
            except RuntimeError as error:
                print(name, str(error).splitlines()[0], sep="\t", flush=True)
""")


def test_reported_crash_cases_raise():
    """T, B, N = 50, 64, 4096, where these calls segfaulted, in a process of their own: a
    regression then fails naming the case instead of killing the test run."""
    result = subprocess.run([sys.executable, "-c", CRASH_SCRIPT], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr[-2000:]}"
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert len(lines) == 6, result.stdout
    for name, message in lines:
        assert re.match(rf"snnfast\.(recurrent_)?lif_backward: {name} must have shape ", message), message
