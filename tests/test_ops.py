"""snnfast.lif and snnfast.recurrent_lif against their pure-PyTorch reference, on every device
the kernels run on (the CPU, the emulated CUDA device and a real GPU), through the one
harness of oracle.py: fresh random inputs from sample_inputs, outputs and every gradient
with the same random grad_out through both sides, and opcheck on the same samples.
Tests that only one device or one op has are in test_lif.py, test_lif_cuda.py and
test_recurrent_lif.py."""
from __future__ import annotations

import contextlib
import ctypes

import pytest
import torch

from snnfast import memory, output_cache
from oracle import (ALL_OUTPUTS, LIF, PARAM_KINDS, RESETS, SURROGATES, U0_KINDS, check_against_reference,
                    device, grad_outputs, op, opcheck, sample_inputs)  # noqa: F401 (fixtures)


@pytest.mark.parametrize("outputs", [ALL_OUTPUTS, ("spikes",)], ids=["all_outputs", "spikes_only"])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
@pytest.mark.parametrize("reset", RESETS)
def test_variants_float64(op, device, reset, surrogate, detach_reset, outputs):
    # T = 37 goes round the CUDA kernels' float64 rings (16 steps ahead forward, 8 backward)
    # more than twice, through both the unchecked steady-state blocks and the checked last ones.
    inputs = sample_inputs(op, device, torch.float64, T=37, B=4, F=(3, 5))
    spikes = check_against_reference(op, device, inputs, grad_outputs(inputs, outputs), reset=reset,
                                     v_reset=-0.1 if reset == "hard" else 0.0,
                                     detach_reset=detach_reset, surrogate=surrogate)["spikes"]
    assert 0 < spikes.mean() < 1  # the inputs make neurons both fire and stay silent


@pytest.mark.parametrize("u0_kind", U0_KINDS)
@pytest.mark.parametrize("kind", PARAM_KINDS)
def test_parameter_shapes_float64(op, device, kind, u0_kind):
    inputs = sample_inputs(op, device, torch.float64, T=37, B=4, kinds=(kind,) * 3, u0_kind=u0_kind)
    check_against_reference(op, device, inputs, reset="soft", surrogate="atan")


@pytest.mark.parametrize("name", ["beta", "alpha", "threshold"])
@pytest.mark.parametrize("kind", PARAM_KINDS)
def test_one_parameter_shape(op, device, name, kind):
    # One parameter of each kind beside float ones (the kernels broadcast each on its own).
    kinds = tuple(kind if n == name else "float" for n in ("beta", "alpha", "threshold"))
    inputs = sample_inputs(op, device, torch.float64, T=5, B=2, F=(3, 4, 5), kinds=kinds, u0_kind=None)
    check_against_reference(op, device, inputs, surrogate="sigmoid")


def test_mixed_parameter_shapes_float64(op, device):
    inputs = sample_inputs(op, device, torch.float64, T=37, B=4, kinds=("neuron", "float", "channel"),
                           u0_kind="batch")
    check_against_reference(op, device, inputs, reset="hard")


@pytest.mark.parametrize("beta", [0.0, 1.0], ids=["complete-leakage", "no-leakage"])
@pytest.mark.parametrize("reset", RESETS)
def test_leakage_extremes(op, device, beta, reset):
    inputs = sample_inputs(op, device, torch.float64, T=8, B=3, F=(3, 4, 5))
    inputs["beta"] = beta
    check_against_reference(op, device, inputs, reset=reset, surrogate="triangle")


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_low_precision(op, device, dtype, reset):
    # lif: T = 70 goes round the CUDA kernels' float32 rings (32 steps ahead forward, 16
    # backward) twice or more. recurrent_lif: shorter, as a GEMM in another order than the
    # reference's may round o_{t-1} V^T across the threshold in float32 over many steps.
    T = 70 if op is LIF else 12
    inputs = sample_inputs(op, device, dtype, T=T, B=3, F=(2, 9), u0_kind="neuron", seed=13)
    got = check_against_reference(op, device, inputs, reset=reset, surrogate="triangle")
    assert got["spikes"].dtype == dtype and got["grad_x"].dtype == dtype


@pytest.mark.parametrize(
    "T, B, F, dtype",
    [(0, 2, (5,), torch.float64), (1, 1, (1,), torch.float64), (1, 3, (7,), torch.float64),
     (33, 2, (129,), torch.float64), (70, 1, (300,), torch.float64), (5, 70, (2, 3, 4), torch.float64),
     (7, 3, (37,), torch.float64),
     # More neurons than one CPU block (256) and a ragged tail, threads splitting the work.
     (4, 3, (700,), torch.float32)],
)
def test_sizes(op, device, T, B, F, dtype):
    inputs = sample_inputs(op, device, dtype, T=T, B=B, F=F)
    check_against_reference(op, device, inputs, reset="hard", surrogate="sigmoid")


@pytest.mark.parametrize("return_state, return_membrane", [(False, False), (True, False), (False, True)])
def test_output_flags(op, device, return_state, return_membrane):
    inputs = sample_inputs(op, device, torch.float64, T=4, B=2)
    sequence = [inputs["x"]] + ([inputs["V"]] if op.recurrent else [])
    flags = dict(u0=inputs["u0"], return_state=return_state, return_membrane=return_membrane)
    with device.kernels():
        out = op.fn(*sequence, 0.5, **flags)
    ref = op.reference(*sequence, 0.5, **flags)
    if not (return_state or return_membrane):
        assert isinstance(out, torch.Tensor)
        out, ref = (out,), (ref,)
    assert len(out) == 1 + return_state + return_membrane
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("needs", [("x",), ("V",), ("alpha",), ("beta", "u0"), ("threshold", "V"), ("u0",)])
def test_some_inputs_need_grad(op, device, needs):
    if not op.recurrent and "V" in needs:
        needs = tuple(n for n in needs if n != "V") or ("x",)
    inputs = sample_inputs(op, device, torch.float64, T=5, B=2, kinds=("neuron",) * 3, requires_grad=False)
    for name in needs:
        inputs[name].requires_grad_()
    check_against_reference(op, device, inputs, grad_outputs(inputs, ("spikes", "membrane")),
                            surrogate="atan")


@pytest.mark.parametrize("outputs", [("u_last",), ("membrane",)])
def test_gradient_from_one_output(op, device, outputs):
    # No gradient reaches the spikes (grad_spikes is None in the backward pass).
    inputs = sample_inputs(op, device, torch.float64, T=5, B=2)
    check_against_reference(op, device, inputs, grad_outputs(inputs, outputs), reset="soft")


def test_non_contiguous_input(op, device):
    inputs = sample_inputs(op, device, torch.float64, T=6, B=2, F=(15,))
    x = inputs["x"].detach().permute(2, 1, 0).contiguous().permute(2, 1, 0)  # odd strides
    assert not x.is_contiguous()
    inputs["x"] = x.requires_grad_()
    check_against_reference(op, device, inputs)


@pytest.mark.parametrize("reset, surrogate, kinds, u0_kind", [
    ("hard", "rectangle", ("layer", "layer", "layer"), None),
    ("soft", "sigmoid", ("channel", "layer", "layer"), "neuron"),
    ("none", "atan", ("layer", "neuron", "layer"), "sample"),
])
@pytest.mark.parametrize("requires_grad", [False, True])
def test_opcheck(op, device, requires_grad, reset, surrogate, kinds, u0_kind):
    inputs = sample_inputs(op, device, torch.float32, T=5, B=3, F=(4, 6), kinds=kinds, u0_kind=u0_kind,
                           requires_grad=requires_grad)
    opcheck(op, device, inputs, reset=reset, surrogate=surrogate)


# ---- the inference path (issue 14): no membrane trace where no gradient can be asked for ----

def _call(op, device, inputs, **options):
    sequence = [inputs["x"]] + ([inputs["V"]] if op.recurrent else [])
    with device.kernels():
        return op.fn(*sequence, inputs["beta"], alpha=inputs["alpha"], threshold=inputs["threshold"],
                     u0=inputs["u0"], return_state=True, **options)


@pytest.mark.parametrize("mode", ["no_grad", "inference_mode", "no_input_requires_grad"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16], ids=str)
def test_inference_path_gives_the_training_paths_bits(op, device, dtype, reset, mode):
    inputs = sample_inputs(op, device, dtype, T=37, B=3, F=(3, 5), u0_kind="sample", seed=5)
    options = dict(reset=reset, v_reset=-0.1 if reset == "hard" else 0.0)
    spikes, u_last = _call(op, device, inputs, **options)  # inputs require grad: the training op
    assert spikes.requires_grad
    if mode == "no_input_requires_grad":
        inputs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        context = contextlib.nullcontext()
    else:
        context = torch.no_grad() if mode == "no_grad" else torch.inference_mode()
    with context:
        fast_spikes, fast_u_last = _call(op, device, inputs, **options)
    assert torch.equal(fast_spikes, spikes.detach()) and torch.equal(fast_u_last, u_last.detach())
    # Nothing was recorded for a backward pass: there is none to run.
    assert fast_spikes.grad_fn is None and not fast_spikes.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        fast_spikes.sum().backward()


def test_inference_path_allocates_only_the_spikes(op):
    # 32 MiB (lif) and 36 MiB (recurrent_lif) of float32 spikes; the training path would
    # write as much membrane trace again. Peak RSS on the CPU (snnfast.memory), at sizes no
    # other test allocates (the output cache hands a freed block to a call of the same size).
    # Few neurons for recurrent_lif, whose GEMM per step is N^2.
    if not memory.cpu_peak_supported():
        pytest.fail("snnfast.memory cannot measure the CPU peak on this system")
    T, B, N = (2048, 64, 72) if op.recurrent else (128, 64, 1024)
    inputs = sample_inputs(op, "cpu", torch.float32, T=T, B=B, F=(N,), kinds=("layer",) * 3,
                           u0_kind=None, requires_grad=False)
    spikes_bytes = T * B * N * 4
    sequence = [inputs["x"]] + ([inputs["V"]] if op.recurrent else [])
    # Memory freed by earlier tests would be reused without growing the RSS: the output
    # cache's blocks go back to the system, and so does glibc's free heap.
    output_cache.release()
    ctypes.CDLL(None).malloc_trim(0)
    with torch.no_grad():
        memory.reset_peak("cpu")
        before = memory.current_bytes("cpu")
        spikes = op.fn(*sequence, 0.9, threshold=1.0)
        grown = memory.peak_bytes("cpu") - before
    assert spikes.shape == (T, B, N)
    # The spikes, plus [B, N] rows and the allocator's slack; a membrane trace would double it.
    assert spikes_bytes * 0.9 < grown < spikes_bytes * 1.3, (grown, spikes_bytes)
