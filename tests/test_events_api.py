"""snnfast.lif(..., return_events=True) and recurrent_lif(..., return_events=True): the spikes
also as events, on the CPU kernels, the emulated CUDA device (tests/emulated_cuda.py) and a
GPU where there is one. Outputs and every gradient against the pure-PyTorch reference with
the same random grad_out through both (float64 and float32), the events against the events
of the reference's spikes; the flags' tuple order; the conversion fallback and the error of
a device without the event ops. Outputs are poisoned before the kernels run (conftest.py)."""
from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast import surrogate
from snnfast.ops import _library, event_linear as events_ops

from oracle import LIF, RECURRENT_LIF, TOLERANCE, assert_results_close, device, grad_outputs, run, sample_inputs  # noqa: F401
from test_event_linear import expected_events


def with_events(fn, store):
    """fn(..., return_events=True), returning what fn returns without it (for oracle.run),
    the events kept in store."""
    def call(*args, **kwargs):
        *out, events = fn(*args, return_events=True, **kwargs)
        store.append(events)
        return tuple(out)
    return call


def assert_events_of(events, spikes):
    """events are those of spikes [T, B, *F] as rows of the T x B samples."""
    offsets, indices = expected_events(spikes.flatten(2))
    assert events.shape == spikes.flatten(2).shape
    assert torch.equal(events.offsets.cpu(), offsets) and torch.equal(events.indices.cpu(), indices)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("kinds,u0_kind", [(("neuron", "neuron", "neuron"), "sample"),
                                           (("float", "layer", "float"), None),
                                           (("channel", "float", "layer"), "neuron")])
@pytest.mark.parametrize("outputs", [("spikes", "u_last", "membrane"), ("spikes",)], ids=["all", "spikes"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_lif_return_events_matches_reference(device, dtype, kinds, u0_kind, outputs, reset):
    inputs = sample_inputs(LIF, device, dtype, T=23, B=3, F=(40,), kinds=kinds, u0_kind=u0_kind, seed=7)
    grads = grad_outputs(inputs, outputs, seed=8)
    events = []
    options = dict(reset=reset, surrogate="sigmoid")
    actual = run(with_events(snnfast.lif, events), inputs, grads, device, **options)
    expected = run(snnfast.reference.lif, inputs, grads, "cpu", **options)
    assert_results_close(actual, expected, TOLERANCE[dtype])
    assert any(name.startswith("grad_") and value is not None for name, value in actual.items())
    (got,) = events
    assert_events_of(got, expected["spikes"])


def test_lif_return_events_multidimensional_neurons(device):
    # F = (3, 5): the events are of the spikes as [T, B, 15]; the spikes [T, B, 3, 5] do not
    # carry them (their shape differs), the events work on their own.
    inputs = sample_inputs(LIF, device, torch.float64, T=9, B=2, F=(3, 5), seed=9)
    grads = grad_outputs(inputs)
    events = []
    actual = run(with_events(snnfast.lif, events), inputs, grads, device)
    expected = run(snnfast.reference.lif, inputs, grads, "cpu")
    assert_results_close(actual, expected, TOLERANCE[torch.float64])
    assert_events_of(events[0], expected["spikes"])
    torch.testing.assert_close(events[0].to_dense(torch.float64).cpu(), expected["spikes"].flatten(2), rtol=0, atol=0)


@pytest.mark.parametrize("return_state", [False, True])
@pytest.mark.parametrize("return_membrane", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_flags_order_and_attached_events(device, return_state, return_membrane, grad):
    # (spikes, [u_T], [h], events): the events last; the same other outputs as without them.
    x = (0.4 + 0.8 * torch.randn(12, 4, 30, generator=torch.Generator().manual_seed(3))).to(device.type)
    x.requires_grad_(grad)
    flags = dict(return_state=return_state, return_membrane=return_membrane)
    with device.kernels():
        plain = snnfast.lif(x, 0.8, **flags)
        out = snnfast.lif(x, 0.8, return_events=True, **flags)
    plain = plain if isinstance(plain, tuple) else (plain,)
    assert isinstance(out, tuple) and len(out) == len(plain) + 1
    assert isinstance(out[-1], events_ops.Events)
    for got, want in zip(out, plain):
        assert torch.equal(got.detach(), want.detach())
        assert got.requires_grad == want.requires_grad == grad
    spikes, events = out[0], out[-1]
    assert events_ops.attached_events(spikes) is events
    assert_events_of(events, spikes.detach().cpu())


def test_next_layer_takes_the_events(device, monkeypatch):
    # event_linear and LinearLIF on spikes from lif(return_events=True) take the attached
    # events: no conversion.
    x = (0.4 + 0.8 * torch.randn(15, 3, 50, generator=torch.Generator().manual_seed(4))).to(device.type)
    weight = torch.randn(6, 50, generator=torch.Generator().manual_seed(5)).to(device.type)
    converted = []
    real = events_ops.to_events
    with device.kernels():
        spikes, _ = snnfast.lif(x, 0.8, return_events=True)
        monkeypatch.setattr(events_ops, "to_events", lambda *a, **k: converted.append(1) or real(*a, **k))
        y = events_ops.event_linear(spikes, weight)
        layer = snnfast.nn.LinearLIF(50, 6, beta=0.5, events=True).to(device.type)
        layer(spikes)
    assert not converted
    torch.testing.assert_close(y, F.linear(spikes, weight))


@dataclasses.dataclass(frozen=True)
class DoubledRectangle(surrogate.Rectangle):
    def derivative(self, x):
        return 2 * super().derivative(x)


def test_reference_fallback_converts(monkeypatch):
    # A surrogate of one's own runs in the reference: the events are its spikes converted.
    monkeypatch.setattr(snnfast.ops._fused, "_warned", set())
    inputs = sample_inputs(LIF, "cpu", torch.float64, T=10, B=2, F=(20,), seed=10)
    grads = grad_outputs(inputs, seed=11)
    events = []
    with pytest.warns(UserWarning, match="DoubledRectangle defines its own derivative"):
        actual = run(with_events(snnfast.lif, events), inputs, grads, "cpu", surrogate=DoubledRectangle())
    expected = run(snnfast.reference.lif, inputs, grads, "cpu", surrogate=DoubledRectangle())
    assert_results_close(actual, expected, TOLERANCE[torch.float64])
    assert_events_of(events[0], expected["spikes"])


def test_device_without_lif_events_converts(monkeypatch):
    # Where the LIF op has no events of its own the spikes are converted (to_events), with
    # the same results.
    inputs = sample_inputs(LIF, "cpu", torch.float64, T=10, B=2, F=(20,), seed=12)
    grads = grad_outputs(inputs, seed=13)
    emitted_events, converted_events, calls = [], [], []
    emitted = run(with_events(snnfast.lif, emitted_events), inputs, grads, "cpu")
    monkeypatch.setattr(_library, "LIF_EVENTS_DEVICES", frozenset())
    real = events_ops.to_events
    monkeypatch.setattr(events_ops, "to_events", lambda *a, **k: calls.append(1) or real(*a, **k))
    converted = run(with_events(snnfast.lif, converted_events), inputs, grads, "cpu")
    assert calls
    assert_results_close(converted, emitted, (0, 0))
    for a, b in zip(converted_events[0], emitted_events[0]):
        assert a == b if isinstance(a, torch.Size) else torch.equal(a, b)


def test_device_without_event_ops_raises(monkeypatch):
    monkeypatch.setattr(_library, "LIF_EVENTS_DEVICES", frozenset())
    monkeypatch.setattr(_library, "RECURRENT_LIF_EVENTS_DEVICES", frozenset())
    monkeypatch.setattr(_library, "EVENT_DEVICES", frozenset())
    x = torch.randn(4, 2, 5)
    with pytest.raises(ValueError, match="snnfast.lif: return_events=True needs the event ops on cpu"):
        snnfast.lif(x, 0.5, return_events=True)
    with pytest.raises(ValueError, match="snnfast.recurrent_lif: return_events=True needs the event ops on cpu"):
        snnfast.recurrent_lif(x, torch.zeros(5, 5), 0.5, return_events=True)
    assert torch.is_tensor(snnfast.lif(x, 0.5))  # without the flag, nothing changes


def test_return_events_must_be_a_bool():
    with pytest.raises(TypeError, match="return_events"):
        snnfast.lif(torch.randn(4, 2, 5), 0.5, return_events="yes")
    with pytest.raises(TypeError, match="return_events"):
        snnfast.recurrent_lif(torch.randn(4, 2, 5), torch.zeros(5, 5), 0.5, return_events=1)


def test_lif_events_opcheck_with_autograd(device):
    # The op's registered autograd (lif's, through lif_backward) where save_membrane.
    x = torch.randn(6, 3, 20, dtype=torch.float64).to(device.type).requires_grad_()
    beta = torch.full((20,), 0.7, dtype=torch.float64).to(device.type).requires_grad_()
    args = (x, beta, torch.tensor(1.0), torch.tensor(1.0), None, "soft", 0.0, False, "sigmoid", 4.0, True)
    with device.kernels():
        torch.library.opcheck(torch.ops.snnfast.lif_events.default, args,
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_lif_events_without_membrane_refuses_autograd(device):
    x = torch.randn(6, 3, 20).to(device.type).requires_grad_()
    args = (x, torch.tensor(0.5), torch.tensor(1.0), torch.tensor(1.0), None, "hard", 0.0, False, "sigmoid", 4.0)
    with device.kernels(), pytest.raises(RuntimeError, match="save_membrane=False keeps no membrane trace"):
        torch.ops.snnfast.lif_events(*args, False)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_recurrent_lif_return_events(device, dtype):
    # Through recurrent_lif_events (emitted by the CPU's steps, converted in the op on CUDA):
    # the same outputs and gradients as without the flag, and the reference's.
    inputs = sample_inputs(RECURRENT_LIF, device, dtype, T=15, B=3, F=(24,), seed=14)
    grads = grad_outputs(inputs, seed=15)
    events = []
    actual = run(with_events(snnfast.recurrent_lif, events), inputs, grads, device)
    plain = run(snnfast.recurrent_lif, inputs, grads, device)
    expected = run(snnfast.reference.recurrent_lif, inputs, grads, "cpu")
    assert_results_close(actual, plain, (0, 0))
    assert_results_close(actual, expected, TOLERANCE[dtype])
    assert_events_of(events[0], expected["spikes"])


def test_return_events_compiles_fullgraph():
    # Under torch.compile the events are outputs of the graph (their number a dynamic size);
    # the spikes carry none there (a traced tensor has no Python attributes).
    def f(x, beta):
        spikes, u_last, events = snnfast.lif(x, beta, return_events=True, return_state=True)
        return spikes, u_last, events.offsets, events.indices

    gen = torch.Generator().manual_seed(16)
    x = (0.4 + 0.8 * torch.randn(8, 3, 12, generator=gen, dtype=torch.float64)).requires_grad_()
    beta = torch.full((12,), 0.7, dtype=torch.float64, requires_grad=True)
    grad_spikes = torch.randn(8, 3, 12, generator=gen, dtype=torch.float64)
    results = []
    for fn in (f, torch.compile(f, fullgraph=True)):
        spikes, u_last, offsets, indices = fn(x, beta)
        grads = torch.autograd.grad((spikes * grad_spikes).sum() + u_last.sum(), [x, beta])
        results.append((spikes, u_last, offsets, indices, *grads))
    for got, want in zip(*reversed(results)):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert_events_of(events_ops.Events(results[1][2], results[1][3], torch.Size((8, 3, 12))), results[1][0].detach())
