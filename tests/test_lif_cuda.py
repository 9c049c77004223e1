"""The CUDA kernels of snnfast.lif against the reference loop and the CPU kernel, on the
emulated CUDA device (tests/emulated_cuda.py) always and on a real GPU where there is one.

Each comparison runs both sides on the same random inputs, pushes the same random grad_out
through them and compares the spikes (exactly: both compute h with the same float
operations), the final state, the membrane trace and every gradient.
"""
from __future__ import annotations

import contextlib
import math

import pytest
import torch

import snnfast
from snnfast import _library, reference, surrogate

from emulated_cuda import CudaDevice, cuda_devices, prepare, set_device

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a real CUDA GPU")

RESETS = ("hard", "soft", "none")
SURROGATES = (
    surrogate.Rectangle(0.8),
    surrogate.Triangle(1.3),
    surrogate.Sigmoid(3.0),
    surrogate.ATan(2.5),
)
PARAM_KINDS = ("float", "layer", "channel", "neuron")
U0_KINDS = (None, "float", "neuron", "sample", "batch")
ALL_OUTPUTS = ("spikes", "u_last", "membrane")

# (rtol, atol relative to the largest expected magnitude) against the reference, whose
# autograd sums in another order; float16 and bfloat16 round grad_x to their own precision.
TOLERANCE = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-4, 1e-6),
    torch.float16: (2e-3, 1e-4),
    torch.bfloat16: (1.6e-2, 1e-3),
}
# The CPU kernel runs the same per-step code in the same order; only the reductions of the
# parameter gradients (and the device's exp) differ.
KERNEL_TOLERANCE = {
    torch.float64: (1e-12, 1e-14),
    torch.float32: (1e-5, 1e-7),
    torch.float16: (2e-3, 1e-5),
    torch.bfloat16: (1.6e-2, 1e-4),
}


@pytest.fixture(params=cuda_devices(), ids=str)
def cuda(request):
    device = prepare(request.param)
    # Without the CUDA kernels snnfast.lif falls back to the reference, which would pass
    # every comparison here without testing anything.
    if not device.emulated:
        assert "cuda" in _library.LIF_DEVICES, "snnfast._C was built without its CUDA kernels"
    return device


def acc_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def make_inputs(T, B, F, dtype, kinds=("channel", "layer", "neuron"), u0_kind="sample", seed=0):
    """Random CPU inputs: x [T, B, *F] and beta, alpha, threshold of the given kinds
    (float, layer, channel or neuron), u0 of the given kind. Tensors require grad."""
    gen = torch.Generator().manual_seed(seed)
    acc = acc_dtype(dtype)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=gen, dtype=acc)

    def param(kind, low, high):
        if kind == "float":
            return float(uniform((), low, high))
        shape = {"layer": (), "channel": (F[0],), "neuron": F}[kind]
        return uniform(shape, low, high).requires_grad_()

    # Centred so that the membrane often crosses the threshold and the surrogate windows.
    x = (0.4 + 0.8 * torch.randn((T, B) + F, generator=gen, dtype=acc)).to(dtype).requires_grad_()
    u0 = {
        None: None,
        "float": 0.3,
        "neuron": uniform(F, -0.5, 0.9).requires_grad_(),  # the learnable IMP
        "sample": uniform((B,) + F, -0.5, 0.9).requires_grad_(),
        "batch": uniform((B,) + (1,) * len(F), -0.5, 0.9).requires_grad_(),
    }[u0_kind]
    return {
        "x": x,
        "beta": param(kinds[0], 0.5, 0.95),
        "alpha": param(kinds[1], 0.6, 1.4),
        "threshold": param(kinds[2], 0.6, 1.4),
        "u0": u0,
    }


def make_grad_outputs(inputs, outputs=ALL_OUTPUTS, seed=1):
    """Random CPU gradients for the named outputs of snnfast.lif."""
    gen = torch.Generator().manual_seed(seed)
    x = inputs["x"]
    acc = acc_dtype(x.dtype)
    shapes = {"spikes": (x.shape, x.dtype), "u_last": (x.shape[1:], acc), "membrane": (x.shape, acc)}
    return {
        name: torch.randn(shapes[name][0], generator=gen, dtype=acc).to(shapes[name][1])
        for name in outputs
    }


def run(lif, inputs, grad_outputs, device, **options):
    """Runs lif on fresh leaf copies of the inputs on `device` (a CudaDevice, or a device
    name for the CPU kernel), back-propagates sum(output * grad_output) over the given
    outputs, and returns the outputs and the gradient of every tensor input (zeros where
    none reached it), on the CPU."""
    kernels = device.kernels() if isinstance(device, CudaDevice) else contextlib.nullcontext()
    device = device.type if isinstance(device, CudaDevice) else device
    with kernels:
        return _run(lif, inputs, grad_outputs, device, **options)


def _run(lif, inputs, grad_outputs, device, **options):
    leaves = {
        name: value.detach().to(device).requires_grad_(value.requires_grad)
        if isinstance(value, torch.Tensor) else value
        for name, value in inputs.items()
    }
    spikes, u_last, membrane = lif(
        leaves["x"], leaves["beta"], alpha=leaves["alpha"], threshold=leaves["threshold"],
        u0=leaves["u0"], return_state=True, return_membrane=True, **options,
    )
    outputs = {"spikes": spikes, "u_last": u_last, "membrane": membrane}
    loss = sum(
        (outputs[name].double() * grad.to(device).double()).sum()
        for name, grad in grad_outputs.items()
    )
    loss.backward()
    results = {name: out.detach().cpu() for name, out in outputs.items()}
    for name, leaf in leaves.items():
        if isinstance(leaf, torch.Tensor) and leaf.requires_grad:
            grad = leaf.grad if leaf.grad is not None else torch.zeros_like(leaf)
            results["grad_" + name] = grad.cpu()
    return results


def assert_results_close(actual, expected, tolerance):
    assert actual.keys() == expected.keys()
    rtol, atol = tolerance
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        if name == "spikes":
            assert torch.equal(got, want), "spikes differ"
            continue
        scale = max(1.0, want.double().abs().max().item()) if want.numel() else 1.0
        torch.testing.assert_close(
            got.double(), want.double(), rtol=rtol, atol=atol * scale, msg=lambda m: f"{name}: {m}"
        )


def check_against_reference(cuda, inputs, grad_outputs, **options):
    dtype = inputs["x"].dtype
    actual = run(snnfast.lif, inputs, grad_outputs, cuda, **options)
    expected = run(reference.lif, inputs, grad_outputs, "cpu", **options)
    assert_results_close(actual, expected, TOLERANCE[dtype])


@pytest.mark.parametrize("outputs", [ALL_OUTPUTS, ("spikes",)], ids=["all_outputs", "spikes_only"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate_fn", SURROGATES, ids=lambda s: s.name)
@pytest.mark.parametrize("reset", RESETS)
def test_variants_float64(cuda, reset, surrogate_fn, detach_reset, outputs):
    # T = 37 goes round the float64 rings (16 steps ahead forward, 8 backward) more than
    # twice, through both the unchecked steady-state blocks and the checked last blocks.
    inputs = make_inputs(37, 4, (3, 5), torch.float64)
    check_against_reference(
        cuda, inputs, make_grad_outputs(inputs, outputs), reset=reset, v_reset=-0.1 if reset == "hard" else 0.0,
        detach_reset=detach_reset, surrogate=surrogate_fn,
    )


@pytest.mark.parametrize("u0_kind", U0_KINDS)
@pytest.mark.parametrize("kind", PARAM_KINDS)
def test_parameter_shapes_float64(cuda, kind, u0_kind):
    inputs = make_inputs(37, 4, (3, 5), torch.float64, kinds=(kind,) * 3, u0_kind=u0_kind)
    check_against_reference(cuda, inputs, make_grad_outputs(inputs), reset="soft", surrogate="atan")


def test_mixed_parameter_shapes_float64(cuda):
    inputs = make_inputs(37, 4, (3, 5), torch.float64, kinds=("neuron", "float", "channel"),
                         u0_kind="batch")
    check_against_reference(cuda, inputs, make_grad_outputs(inputs), reset="hard")


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_low_precision_against_reference(cuda, dtype, reset):
    # T = 70 goes round the float32 rings (32 steps ahead forward, 16 backward) twice or more.
    inputs = make_inputs(70, 3, (2, 9), dtype, u0_kind="neuron")
    check_against_reference(cuda, inputs, make_grad_outputs(inputs), reset=reset, surrogate="triangle")


@pytest.mark.parametrize(
    "T, B, F",
    [(0, 2, (5,)), (1, 1, (1,)), (1, 3, (7,)), (33, 2, (129,)), (70, 1, (300,)), (5, 70, (2, 3, 4))],
)
def test_sizes_float64(cuda, T, B, F):
    inputs = make_inputs(T, B, F, torch.float64)
    check_against_reference(cuda, inputs, make_grad_outputs(inputs), reset="hard", surrogate="sigmoid")


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_matches_cpu_kernel(cuda, dtype, reset):
    assert "cpu" in _library.LIF_DEVICES
    # T = 100 runs the unchecked steady-state blocks of both passes in every dtype.
    inputs = make_inputs(100, 6, (4, 33), dtype, u0_kind="neuron")
    grad_outputs = make_grad_outputs(inputs)
    options = dict(reset=reset, surrogate="sigmoid")
    actual = run(snnfast.lif, inputs, grad_outputs, cuda, **options)
    expected = run(snnfast.lif, inputs, grad_outputs, "cpu", **options)
    assert_results_close(actual, expected, KERNEL_TOLERANCE[dtype])


@pytest.mark.parametrize("surrogate_fn", SURROGATES, ids=lambda s: s.name)
@pytest.mark.parametrize("reset,detach_reset", [("hard", False), ("hard", True), ("soft", False),
                                                ("soft", True), ("none", False)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_same_bits_as_cpu_kernel_emulated(dtype, reset, detach_reset, surrogate_fn):
    # One arithmetic on both devices (csrc/compile_flags.txt, lif_step.h): the CUDA kernels
    # give the CPU kernel's bits, outputs and gradients. On the emulated device only, whose
    # glue reduces the parameter gradients on the CPU; a GPU sums them in another order.
    emulated = prepare(CudaDevice("emulated"))
    inputs = make_inputs(70, 3, (5, 13), dtype, u0_kind="sample")
    grad_outputs = make_grad_outputs(inputs)
    options = dict(reset=reset, detach_reset=detach_reset, v_reset=-0.2 if reset == "hard" else 0.0, surrogate=surrogate_fn)
    actual = run(snnfast.lif, inputs, grad_outputs, emulated, **options)
    expected = run(snnfast.lif, inputs, grad_outputs, "cpu", **options)
    assert actual.keys() == expected.keys()
    for name, want in expected.items():
        assert torch.equal(actual[name], want), name


def test_deterministic(cuda):
    # Enough neurons for full blocks and a multi-block reduction of each parameter gradient.
    inputs = make_inputs(20, 64, (16, 256), torch.float32, kinds=("layer", "channel", "neuron"),
                         u0_kind="neuron")
    grad_outputs = make_grad_outputs(inputs)
    first = run(snnfast.lif, inputs, grad_outputs, cuda, reset="soft")
    second = run(snnfast.lif, inputs, grad_outputs, cuda, reset="soft")
    for name in first:
        assert torch.equal(first[name], second[name]), name


@pytest.mark.parametrize("outputs", [ALL_OUTPUTS, ("spikes",)], ids=["all_outputs", "spikes_only"])
@pytest.mark.parametrize("T", [0, 3, 40])
def test_poisoned_outputs_are_all_written(cuda, monkeypatch, T, outputs):
    # With SNNFAST_POISON=1 the glue fills every output with NaN before the kernel runs.
    inputs = make_inputs(T, 5, (3, 7), torch.float32, u0_kind="sample")
    grad_outputs = make_grad_outputs(inputs, outputs)
    clean = run(snnfast.lif, inputs, grad_outputs, cuda, reset="hard")
    monkeypatch.setenv("SNNFAST_POISON", "1")
    poisoned = run(snnfast.lif, inputs, grad_outputs, cuda, reset="hard")
    for name, value in poisoned.items():
        assert not value.isnan().any(), name
        assert torch.equal(value, clean[name]), name


@needs_gpu
def test_indexing_beyond_2_31_elements():
    # T * B * N = 2^31 + 2^20: the indices of the last step do not fit in an int32.
    T, B, N = 2049, 1, 2**20
    numel = T * B * N
    assert numel > 2**31
    # x, spikes, grad_spikes and grad_x in float16, the membrane in float32, and slack.
    needed = numel * (4 * 2 + 4) + 2 * 2**30
    free, _ = torch.cuda.mem_get_info()
    if free < needed:
        pytest.skip(f"needs {needed / 2**30:.0f} GiB of free GPU memory, {free / 2**30:.0f} GiB free")
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn((T, B, N), generator=gen, device="cuda", dtype=torch.float16)
    x.mul_(0.8).add_(0.4).requires_grad_()
    spikes, u_last, membrane = snnfast.lif(x, 0.9, threshold=1.0, reset="soft",
                                           return_state=True, return_membrane=True)
    grad_spikes = torch.randn((T, B, N), generator=gen, device="cuda", dtype=torch.float16)
    spikes.backward(grad_spikes)
    # The neurons are independent: the first and the last 64 against the reference alone.
    for columns in (slice(0, 64), slice(N - 64, N)):
        x_part = x.detach()[:, :, columns].cpu().requires_grad_()
        ref_spikes, ref_u_last, ref_membrane = reference.lif(
            x_part, 0.9, threshold=1.0, reset="soft", return_state=True, return_membrane=True
        )
        (ref_spikes.double() * grad_spikes[:, :, columns].cpu().double()).sum().backward()
        actual = {
            "spikes": spikes[:, :, columns].detach().cpu(),
            "u_last": u_last[:, columns].detach().cpu(),
            "membrane": membrane[:, :, columns].detach().cpu(),
            "grad_x": x.grad[:, :, columns].cpu(),
        }
        expected = {"spikes": ref_spikes.detach(), "u_last": ref_u_last.detach(),
                    "membrane": ref_membrane.detach(), "grad_x": x_part.grad}
        assert_results_close(actual, expected, TOLERANCE[torch.float16])


@needs_gpu
def test_runs_on_the_current_stream():
    # On a side stream held up by a sleep, x and grad_spikes are written only after the sleep.
    # A kernel launched on another stream would run first and read the NaN they held before.
    cuda = CudaDevice("cuda")
    inputs = make_inputs(16, 8, (256,), torch.float32, u0_kind="neuron")
    grad_outputs = make_grad_outputs(inputs, ("spikes",))
    expected = run(snnfast.lif, inputs, grad_outputs, cuda, reset="hard")

    leaves = {
        name: value.detach().cuda().requires_grad_() if isinstance(value, torch.Tensor) else value
        for name, value in inputs.items()
    }
    x_values = leaves["x"].detach().clone()
    grad_values = grad_outputs["spikes"].cuda()
    with torch.no_grad():
        leaves["x"].fill_(math.nan)
    grad_spikes = torch.full_like(grad_values, math.nan)
    torch.cuda.synchronize()

    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(100_000_000)
        with torch.no_grad():
            leaves["x"].copy_(x_values)
        spikes, u_last, membrane = snnfast.lif(
            leaves["x"], leaves["beta"], alpha=leaves["alpha"], threshold=leaves["threshold"],
            u0=leaves["u0"], reset="hard", return_state=True, return_membrane=True,
        )
        grad_spikes.copy_(grad_values)
        spikes.backward(grad_spikes)
    stream.synchronize()

    actual = {"spikes": spikes, "u_last": u_last, "membrane": membrane}
    actual.update({"grad_" + name: leaf.grad for name, leaf in leaves.items()
                   if isinstance(leaf, torch.Tensor)})
    actual = {name: value.detach().cpu() for name, value in actual.items()}
    assert_results_close(actual, expected, KERNEL_TOLERANCE[torch.float32])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_runs_on_the_device_of_x():
    inputs = make_inputs(16, 8, (64,), torch.float32, u0_kind="neuron")
    grad_outputs = make_grad_outputs(inputs)
    with torch.cuda.device(0):
        expected = run(snnfast.lif, inputs, grad_outputs, "cuda:0", reset="soft")
        actual = run(snnfast.lif, inputs, grad_outputs, "cuda:1", reset="soft")
    assert_results_close(actual, expected, KERNEL_TOLERANCE[torch.float32])


@pytest.mark.parametrize("u0_kind", [None, "neuron", "sample"])
def test_opcheck(cuda, u0_kind):
    inputs = make_inputs(5, 3, (4, 6), torch.float32, u0_kind=u0_kind)
    x, beta, alpha, threshold, u0 = (
        None if value is None else value.detach().to(cuda.type).requires_grad_()
        for value in (inputs[name] for name in ("x", "beta", "alpha", "threshold", "u0"))
    )
    options = ("soft", 0.0, False, "sigmoid", 4.0)
    with cuda.kernels():
        torch.library.opcheck(torch.ops.snnfast.lif.default, (x, beta, alpha, threshold, u0, *options))
        with torch.no_grad():
            spikes, membrane, u_last = torch.ops.snnfast.lif(x, beta, alpha, threshold, u0, *options)
        grads = {name: g.to(cuda.type) for name, g in make_grad_outputs(inputs).items()}
        backward_args = (
            grads["spikes"], grads["membrane"], grads["u_last"], membrane,
            x.detach(), beta.detach(), alpha.detach(), threshold.detach(),
            None if u0 is None else u0.detach(), *options, [True] * 5,
        )
        torch.library.opcheck(torch.ops.snnfast.lif_backward.default, backward_args)


# The launch shape is chosen from the multiprocessor count: 128 threads per block where there
# are at least two blocks per multiprocessor, down to 32 (launch_shape in lif_kernel.cuh).
# (multiprocessors, neurons B * N): 128 threads and a partial last block; 64; 32; one block
# of 32 threads for a single neuron.
LAUNCH_SHAPES = [(1, 2 * 3 * 67), (4, 6 * 101), (64, 6 * 33), (132, 1)]


@pytest.mark.parametrize("multiprocessors, neurons", LAUNCH_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_launch_shapes_emulated(multiprocessors, neurons, dtype):
    # Only the emulated device can be given another multiprocessor count. T = 40 runs both
    # the unchecked and the checked blocks of the look-ahead rings.
    emulated = prepare(CudaDevice("emulated"))
    set_device(multiprocessors, 48 * 1024)
    inputs = make_inputs(40, 1, (neurons,), dtype, kinds=("neuron",) * 3, u0_kind="sample")
    check_against_reference(emulated, inputs, make_grad_outputs(inputs), reset="soft",
                            surrogate="sigmoid")
