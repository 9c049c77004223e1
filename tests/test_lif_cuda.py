"""The tests of snnfast.lif's CUDA kernels that only they have, on the emulated CUDA device
(tests/emulated_cuda.py) always and on a real GPU where there is one: the same results as
the CPU kernel (the same bits on the emulated device), determinism, launch shapes, the
current stream and device, 64-bit indexing. The comparisons against the reference on every
device are in test_ops.py (oracle.py)."""
from __future__ import annotations

import math

import pytest
import torch

import snnfast
from snnfast import _library, reference

from emulated_cuda import CudaDevice, cuda_devices, prepare, set_device
from oracle import (ALL_OUTPUTS, LIF, SURROGATES, TOLERANCE, assert_results_close, check_against_reference,
                    grad_outputs, needs_gpu, run, sample_inputs)

RESETS = ("hard", "soft", "none")
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


def make_inputs(T, B, F, dtype, kinds=("channel", "layer", "neuron"), u0_kind="sample", seed=0):
    """Random CPU inputs of snnfast.lif (oracle.sample_inputs)."""
    return sample_inputs(LIF, "cpu", dtype, T=T, B=B, F=F, kinds=kinds, u0_kind=u0_kind, seed=seed)


def make_grad_outputs(inputs, outputs=("spikes", "u_last", "membrane"), seed=1):
    return grad_outputs(inputs, outputs, seed)


def assert_same(actual, expected):
    assert actual.keys() == expected.keys()
    for name, want in expected.items():
        assert (actual[name] is None) == (want is None), name
        assert want is None or torch.equal(actual[name], want), name


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
    assert_same(actual, expected)


def test_deterministic(cuda):
    # Enough neurons for full blocks and a multi-block reduction of each parameter gradient.
    inputs = make_inputs(20, 64, (16, 256), torch.float32, kinds=("layer", "channel", "neuron"),
                         u0_kind="neuron")
    grad_outputs = make_grad_outputs(inputs)
    first = run(snnfast.lif, inputs, grad_outputs, cuda, reset="soft")
    second = run(snnfast.lif, inputs, grad_outputs, cuda, reset="soft")
    assert_same(first, second)


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
        assert value is None or not value.isnan().any(), name
    assert_same(poisoned, clean)


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
    check_against_reference(LIF, emulated, inputs, reset="soft", surrogate="sigmoid")
