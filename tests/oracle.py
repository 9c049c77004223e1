"""The one oracle harness of the fused ops, snnfast.lif and snnfast.recurrent_lif (after
pytorch/extension-cpp's test/test_extension.py): sample_inputs(op, device, dtype, ...) makes
fresh random inputs, and the same sample feeds

- check_against_reference: the op on `device` against the pure-PyTorch reference on the CPU,
  forward outputs and the gradient of every tensor input, with the same random grad_out
  pushed through both;
- opcheck: torch.library.opcheck of the op and of its backward op.

A device is "cpu" (the CPU kernels), "emulated" (the CUDA kernels on the host,
tests/emulated_cuda.py) or "cuda" (a real GPU; skipped only where there is none). The tests
run with SNNFAST_POISON=1 (conftest.py): every output of a kernel starts as NaN, so an
element it forgets to write fails the comparison.
"""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import snnfast
from snnfast import reference

from emulated_cuda import CudaDevice, prepare


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    fn: object         # the public function, snnfast.<name>
    reference: object  # snnfast.reference.<name>
    recurrent: bool    # whether it takes V after x (and x is [T, B, N])

    def __str__(self) -> str:
        return self.name

    def overload(self, suffix: str = ""):
        return getattr(torch.ops.snnfast, self.name + suffix).default


LIF = Op("lif", snnfast.lif, reference.lif, recurrent=False)
RECURRENT_LIF = Op("recurrent_lif", snnfast.recurrent_lif, reference.recurrent_lif, recurrent=True)
OPS = [LIF, RECURRENT_LIF]

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA GPU")
# Every device the kernels run on; the real GPU is skipped only where there is none.
DEVICES = [CudaDevice("cpu"), CudaDevice("emulated"), pytest.param(CudaDevice("cuda"), marks=needs_gpu)]


@pytest.fixture(params=DEVICES, ids=str)
def device(request):
    """A CudaDevice ("cpu", "emulated" or "cuda"), the emulated one reset to an H100's shape."""
    return prepare(request.param)


@pytest.fixture(params=OPS, ids=str)
def op(request):
    return request.param


RESETS = ("hard", "soft", "none")
SURROGATES = (
    snnfast.surrogate.Rectangle(0.8),
    snnfast.surrogate.Triangle(1.3),
    snnfast.surrogate.Sigmoid(3.0),
    snnfast.surrogate.ATan(2.5),
)
PARAM_KINDS = ("float", "layer", "channel", "neuron")
U0_KINDS = (None, "float", "neuron", "sample", "batch", "broadcast")
ALL_OUTPUTS = ("spikes", "u_last", "membrane")

# (rtol, atol relative to the largest expected magnitude) against the reference, whose
# autograd sums in another order; float16 and bfloat16 round grad_x to their own precision.
TOLERANCE = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-4, 1e-6),
    torch.float16: (2e-3, 1e-4),
    torch.bfloat16: (1.6e-2, 1e-3),
}


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def sample_inputs(op: Op, device, dtype, *, T=6, B=3, F=(3, 5), kinds=("channel", "layer", "neuron"),
                  u0_kind="sample", seed=0, requires_grad=True) -> dict:
    """Random inputs of `op` on `device` (a CudaDevice or a device type): x [T, B, *F] (for
    recurrent_lif F is flattened to (N,)) and V [N, N], beta, alpha, threshold of the given
    kinds (float, layer, channel or neuron), u0 of the given kind. Tensors require grad."""
    device = getattr(device, "type", device)
    if op.recurrent:
        F = (math.prod(F),)
    gen = torch.Generator().manual_seed(seed)
    acc = acc_dtype(dtype)

    def uniform(shape, low, high):
        return (low + (high - low) * torch.rand(shape, generator=gen, dtype=acc)).to(device)

    def learnable(t):
        return t.requires_grad_(requires_grad)

    def param(kind, low, high):
        if kind == "float":
            return float(uniform((), low, high))
        shape = {"layer": (), "channel": (F[0],), "neuron": F}[kind]
        return learnable(uniform(shape, low, high))

    # Centred so that the membrane often crosses the threshold and the surrogate windows.
    x = (0.4 + 0.8 * torch.randn((T, B) + F, generator=gen, dtype=acc)).to(device=device, dtype=dtype)
    inputs = {"x": learnable(x)}
    if op.recurrent:
        # Scaled so that the recurrent term moves the membrane by as much as the input; the
        # op computes o_{t-1} V^T in the arithmetic dtype, so V is in it.
        N = F[0]
        inputs["V"] = learnable((1.5 / N**0.5 * torch.randn(N, N, generator=gen, dtype=acc)).to(device))
    u0_shapes = {"neuron": F, "sample": (B,) + F, "batch": (B,) + (1,) * len(F), "broadcast": (1,) + F}
    inputs.update(
        beta=param(kinds[0], 0.5, 0.95),
        alpha=param(kinds[1], 0.6, 1.4),
        threshold=param(kinds[2], 0.6, 1.4),
        u0=(None if u0_kind is None else 0.3 if u0_kind == "float"
            else learnable(uniform(u0_shapes[u0_kind], -0.5, 0.9))),
    )
    return inputs


def grad_outputs(inputs: dict, outputs=ALL_OUTPUTS, seed=1) -> dict:
    """Random gradients (on the CPU) for the named outputs of an op run on `inputs`."""
    gen = torch.Generator().manual_seed(seed)
    x = inputs["x"]
    acc = acc_dtype(x.dtype)
    shapes = {"spikes": (x.shape, x.dtype), "u_last": (x.shape[1:], acc), "membrane": (x.shape, acc)}
    return {name: torch.randn(shapes[name][0], generator=gen, dtype=acc).to(shapes[name][1])
            for name in outputs}


def run(fn, inputs: dict, grads: dict, device="cpu", **options) -> dict:
    """Runs fn (an op or its reference) on fresh leaf copies of the inputs on `device` (a
    CudaDevice or a device type), back-propagates sum(output * grad) over the outputs named in
    grads, and returns the outputs and the gradient of every tensor input that requires grad
    (None where none reached it), on the CPU."""
    kernels = device.kernels() if isinstance(device, CudaDevice) else None
    device = getattr(device, "type", device)
    leaves = {name: value.detach().to(device).requires_grad_(value.requires_grad)
              if isinstance(value, torch.Tensor) else value for name, value in inputs.items()}
    sequence = [leaves["x"]] + ([leaves["V"]] if "V" in leaves else [])
    with kernels or _no_context():
        spikes, u_last, membrane = fn(
            *sequence, leaves["beta"], alpha=leaves["alpha"], threshold=leaves["threshold"],
            u0=leaves["u0"], return_state=True, return_membrane=True, **options)
        outputs = {"spikes": spikes, "u_last": u_last, "membrane": membrane}
        loss = sum((outputs[name].double() * grad.to(device).double()).sum() for name, grad in grads.items())
        tensors = {name: leaf for name, leaf in leaves.items()
                   if isinstance(leaf, torch.Tensor) and leaf.requires_grad}
        if tensors and torch.is_tensor(loss) and loss.requires_grad:
            computed = torch.autograd.grad(loss, list(tensors.values()), allow_unused=True)
        else:
            computed = [None] * len(tensors)
    results = {name: out.detach().cpu() for name, out in outputs.items()}
    results.update({"grad_" + name: None if g is None else g.cpu() for name, g in zip(tensors, computed)})
    return results


class _no_context:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def assert_results_close(actual: dict, expected: dict, tolerance, exact_spikes=True):
    assert actual.keys() == expected.keys()
    rtol, atol = tolerance
    for name, want in expected.items():
        got = actual[name]
        # No gradient (None) is a gradient of zeros: autograd's graph may not reach an input
        # (x of an empty sequence) that the op's backward gives zeros for.
        if got is None or want is None:
            assert not (got if want is None else want).any(), f"{name}: nonzero where the other has none"
            continue
        assert got.dtype == want.dtype and got.shape == want.shape, (name, got.dtype, want.dtype, got.shape, want.shape)
        assert torch.isfinite(got).all() or not torch.isfinite(want).all(), \
            f"{name}: the kernel left unwritten (NaN) or non-finite elements"
        if name == "spikes":
            assert ((got == 0) | (got == 1)).all(), "spikes other than 0 and 1"
            if exact_spikes:
                assert torch.equal(got, want), "spikes differ"
                continue
        scale = max(1.0, want.double().abs().max().item()) if want.numel() else 1.0
        torch.testing.assert_close(got.double(), want.double(), rtol=rtol, atol=atol * scale,
                                   msg=lambda m: f"{name}: {m}")


def check_against_reference(op: Op, device, inputs: dict, grads: dict | None = None, **options) -> dict:
    """op on `device` against op.reference on the CPU: outputs and every gradient."""
    grads = grad_outputs(inputs) if grads is None else grads
    actual = run(op.fn, inputs, grads, device, **options)
    expected = run(op.reference, inputs, grads, "cpu", **options)
    assert_results_close(actual, expected, TOLERANCE[inputs["x"].dtype])
    return actual


def op_args(op: Op, inputs: dict, reset="hard", v_reset=0.0, detach_reset=False,
            surrogate="rectangle") -> tuple:
    """The arguments of torch.ops.snnfast.<op> for a sample, as snnfast.<op> builds them."""
    sequence = (inputs["x"],) + ((inputs["V"],) if op.recurrent else ())
    neuron = snnfast.ops._args.neuron_args(
        op.name, inputs["x"], inputs.get("V"), inputs["beta"],
        dict(alpha=inputs["alpha"], threshold=inputs["threshold"], u0=inputs["u0"], reset=reset,
             v_reset=v_reset, detach_reset=detach_reset, surrogate=surrogate))
    return sequence + neuron.op_args()


def opcheck(op: Op, device, inputs: dict, **options) -> None:
    """torch.library.opcheck of the op and of its backward op on a sample."""
    kernels = device.kernels() if isinstance(device, CudaDevice) else _no_context()
    args = op_args(op, inputs, **options)
    with kernels:
        torch.library.opcheck(op.overload(), args)
        torch.library.opcheck(op.overload("_inference"), tuple(a.detach() if isinstance(a, torch.Tensor) else a
                                                              for a in args))
        with torch.no_grad():
            spikes, membrane, _ = op.overload()(*args)
        grads = {name: g.to(membrane.device) for name, g in grad_outputs(inputs).items()}
        tensors = [a.detach() if isinstance(a, torch.Tensor) else a for a in args]
        n_tensors = 6 if op.recurrent else 5
        x, params, trailing = tensors[0], tensors[1:n_tensors], tensors[n_tensors:]
        saved = ((spikes, membrane) if op.recurrent else (membrane,)) + (x,)
        # recurrent_lif_backward takes detach_recurrent after the neuron's options.
        backward_args = (grads["spikes"], grads["membrane"], grads["u_last"], *saved, *params,
                         *trailing, *((False,) if op.recurrent else ()), [True] * n_tensors)
        torch.library.opcheck(op.overload("_backward"), backward_args)


# ---- for the tests of the memory-saving paths (test_memory.py), which compare against lif ----

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


def run_lif(fn, x, args: dict, grads_out, return_state=True, return_membrane=True) -> dict:
    """fn(x, **args) (snnfast.lif or a path that must equal it): its outputs and the
    gradients of x and of every tensor in args that requires grad, pushing grads_out (one
    per output) through the outputs, as one flat dict."""
    out = fn(x, **args, return_state=return_state, return_membrane=return_membrane)
    out = out if isinstance(out, tuple) else (out,)
    names = ["spikes"] + (["u_last"] if return_state else []) + (["membrane"] if return_membrane else [])
    results = dict(zip(names, out))
    inputs = {"x": x, **{k: v for k, v in args.items() if isinstance(v, torch.Tensor) and v.requires_grad}}
    loss = sum((o.double() * g).sum() for o, g in zip(out, grads_out))
    grads = torch.autograd.grad(loss, list(inputs.values()), allow_unused=True)
    results.update({f"grad_{k}": g for k, g in zip(inputs, grads)})
    return results
