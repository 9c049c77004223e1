"""torch.ops.snnfast.recurrent_lif_events and snnfast.recurrent_lif(..., return_events=True):
the recurrent op's spikes also as events, emitted by the CPU's steps from their own pass
(cpu/emit_events.h, shared with lif) and converted in the op on the CUDA devices (the emulated
one here, a GPU where there is one). The events against the events of the op's own spikes,
the op's other outputs bit for bit against recurrent_lif's, the gradients of the
return_events path against recurrent_lif's with the same random grad_out; outputs are
poisoned before the kernels run (conftest.py)."""
from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast.ops import _library, event_linear as events_ops

from emulated_cuda import cuda_devices, prepare
from oracle import RECURRENT_LIF, TOLERANCE, assert_results_close, grad_outputs, run, sample_inputs
from test_event_linear import context, expected_events, kernels, on  # noqa: F401  (kernels: a fixture)
from test_events_api import with_events

pytestmark = pytest.mark.skipif("cpu" not in _library.RECURRENT_LIF_EVENTS_DEVICES,
                                reason="snnfast._C not built")

OPTIONS = {"hard": ("hard", 0.0, False, "sigmoid", 4.0), "soft": ("soft", 0.0, True, "rectangle", 1.0),
           "none": ("none", 0.0, False, "atan", 2.0)}


def op_inputs(shape, dtype, seed, u0_kind, scale=1.2, shift=0.0):
    """x [T, B, N] of dtype, V [N, N] and per-neuron beta, alpha, threshold (the arithmetic
    dtype), u0 of the given kind (None, "neuron" or "sample")."""
    T, B, N = shape
    gen = torch.Generator().manual_seed(seed)
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = (shift + scale * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    V = (1.5 / max(N, 1) ** 0.5 * torch.randn(N, N, generator=gen, dtype=torch.float64)).to(acc)
    beta = (0.5 + 0.45 * torch.rand(N, generator=gen, dtype=torch.float64)).to(acc)
    alpha = torch.tensor(0.8, dtype=acc)
    threshold = (0.6 + 0.8 * torch.rand(N, generator=gen, dtype=torch.float64)).to(acc)
    u0 = {None: None, "neuron": torch.randn(N, generator=gen, dtype=torch.float64).to(acc),
          "sample": torch.randn(B, N, generator=gen, dtype=torch.float64).to(acc)}[u0_kind]
    return x, V, beta, alpha, threshold, u0


def run_ops(kernels, inputs, options, detach_recurrent, save_membrane):
    """(recurrent_lif_events' outputs, the plain op's: recurrent_lif's where save_membrane,
    else recurrent_lif_inference's with an empty membrane), on the CPU."""
    x, V, *params = (on(kernels, t) if torch.is_tensor(t) else t for t in inputs)
    args = (x, V, *params, *options, detach_recurrent)
    with context(kernels):
        emitted = torch.ops.snnfast.recurrent_lif_events(*args, save_membrane)
        if save_membrane:
            plain = torch.ops.snnfast.recurrent_lif(*args)
        else:
            spikes, u_last = torch.ops.snnfast.recurrent_lif_inference(*args)
            plain = (spikes, torch.empty(0), u_last)
    return tuple(t.cpu() for t in emitted), tuple(t.cpu() for t in plain)


def assert_events_of_spikes(offsets, indices, spikes):
    want_offsets, want_indices = expected_events(spikes)
    assert offsets.dtype == torch.int64 and indices.dtype == torch.int32
    assert torch.equal(offsets, want_offsets), "offsets differ from those of the spikes"
    assert torch.equal(indices, want_indices), "indices differ from those of the spikes"


def assert_same_outputs(emitted, plain, save_membrane):
    spikes, membrane, u_last = emitted[:3]
    assert torch.equal(spikes, plain[0]) and spikes.dtype == plain[0].dtype
    assert torch.equal(u_last, plain[2]) and u_last.dtype == plain[2].dtype
    if save_membrane:
        assert torch.equal(membrane, plain[1]) and membrane.dtype == plain[1].dtype
    else:
        assert membrane.numel() == 0


def test_outputs_are_poisoned():
    # The comparisons below see unwritten outputs only if the op's outputs start as NaN (and
    # its index outputs as -1): conftest.py sets this before the extension loads.
    assert os.environ.get("SNNFAST_POISON") == "1"


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16], ids=str)
@pytest.mark.parametrize("reset,u0_kind", [("hard", None), ("soft", "neuron"), ("none", "sample"), ("hard", "sample")])
@pytest.mark.parametrize("save_membrane", [True, False])
# N > 256 (a row in several of the CPU step's parts of kRow neurons), N = 256, N not dividing
# it, one neuron, and the empty cases (T = 0, B = 0, N = 0).
@pytest.mark.parametrize("shape", [(12, 3, 700), (25, 7, 100), (10, 4, 256), (9, 5, 1), (0, 2, 5), (3, 0, 4),
                                   (4, 2, 0)])
def test_events_are_those_of_the_spikes(dtype, reset, u0_kind, save_membrane, shape):
    # detach_recurrent is the backward pass's: the forward op ignores it.
    check_events(None, shape, dtype, reset, save_membrane, u0_kind, detach_recurrent=True)


@pytest.fixture(params=cuda_devices(), ids=str)
def cuda(request):
    return prepare(request.param)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
@pytest.mark.parametrize("save_membrane", [True, False])
@pytest.mark.parametrize("shape", [(12, 3, 700), (9, 5, 1), (0, 2, 5), (3, 0, 4)])
def test_events_are_those_of_the_spikes_on_cuda(cuda, dtype, reset, save_membrane, shape):
    # There the op converts the spikes its steps wrote: the same contract.
    check_events(cuda, shape, dtype, reset, save_membrane, "sample", False)


def check_events(kernels, shape, dtype, reset, save_membrane, u0_kind, detach_recurrent):
    inputs = op_inputs(shape, dtype, seed=sum(shape) + save_membrane, u0_kind=u0_kind)
    emitted, plain = run_ops(kernels, inputs, OPTIONS[reset], detach_recurrent, save_membrane)
    assert_same_outputs(emitted, plain, save_membrane)
    spikes, _, _, offsets, indices = emitted
    assert_events_of_spikes(offsets, indices, spikes)
    if shape == (12, 3, 700):  # guards the inputs: neurons both fire and stay silent
        assert 0 < indices.numel() < spikes.numel()


@pytest.mark.parametrize("firing", ["all", "none"])
@pytest.mark.parametrize("reset", ["hard", "soft", "none"])
def test_all_firing_and_none_firing(kernels, firing, reset):
    # A large current fires every neuron at every step (a full row: N indices 0 .. N - 1), a
    # negative one none (offsets all 0, no indices).
    shape = (6, 3, 300)
    inputs = op_inputs(shape, torch.float32, seed=5, u0_kind=None, scale=0.0,
                       shift=100.0 if firing == "all" else -100.0)
    emitted, plain = run_ops(kernels, inputs, OPTIONS[reset], False, True)
    assert_same_outputs(emitted, plain, True)
    spikes, _, _, offsets, indices = emitted
    assert_events_of_spikes(offsets, indices, spikes)
    T, B, N = shape
    if firing == "all":
        assert torch.equal(offsets, torch.arange(T * B + 1, dtype=torch.int64) * N)
        assert torch.equal(indices, torch.arange(N, dtype=torch.int32).repeat(T * B))
    else:
        assert not offsets.any() and indices.numel() == 0


def test_same_events_at_one_and_two_threads():
    # T * B * N large enough that the CPU glue gives each thread its own block of rows and
    # time loop (recurrent_lif.cpp for_row_blocks): the events must not depend on the split.
    inputs = op_inputs((64, 16, 64), torch.float32, seed=31, u0_kind="sample")
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            results.append(run_ops(None, inputs, OPTIONS["hard"], False, True)[0])
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results):
        assert torch.equal(one, two)
    assert_events_of_spikes(results[1][3], results[1][4], results[1][0])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("reset,detach_reset,u0_kind", [("hard", False, None), ("soft", True, "sample"),
                                                         ("none", False, "neuron"), ("hard", True, "sample")])
@pytest.mark.parametrize("detach_recurrent", [False, True])
@pytest.mark.parametrize("outputs", [("spikes", "u_last", "membrane"), ("spikes",)], ids=["all", "spikes"])
def test_return_events_gradients_are_recurrent_lifs(dtype, reset, detach_reset, u0_kind, detach_recurrent, outputs,
                                                    monkeypatch):
    # Through recurrent_lif_events on the CPU (never the conversion): every output and every
    # gradient bit for bit those of recurrent_lif with the same random grad_out, and within
    # rounding the reference's; the events those of the reference's spikes.
    inputs = sample_inputs(RECURRENT_LIF, "cpu", dtype, T=17, B=3, F=(120,), kinds=("neuron", "layer", "channel"),
                           u0_kind=u0_kind, seed=40 + len(outputs))
    grads = grad_outputs(inputs, outputs, seed=41)
    options = dict(reset=reset, detach_reset=detach_reset, surrogate="sigmoid", detach_recurrent=detach_recurrent)
    plain = run(snnfast.recurrent_lif, inputs, grads, "cpu", **options)
    monkeypatch.setattr(events_ops, "to_events", lambda *a, **k: pytest.fail("the spikes were converted"))
    events = []
    actual = run(with_events(snnfast.recurrent_lif, events), inputs, grads, "cpu", **options)
    expected = run(snnfast.reference.recurrent_lif, inputs, grads, "cpu", **options)
    assert_results_close(actual, plain, (0, 0))
    assert_results_close(actual, expected, TOLERANCE[dtype])
    assert sum(name.startswith("grad_") and value is not None and bool(value.any())
               for name, value in actual.items()) >= 5
    (got,) = events
    assert got.shape == expected["spikes"].shape
    assert_events_of_spikes(got.offsets, got.indices, expected["spikes"])


def test_return_events_without_autograd_keeps_no_membrane(monkeypatch):
    # Where no gradient can be asked for the op is called with save_membrane=False (the
    # inference path's memory); the spikes and events are unchanged.
    seen = []
    real = torch.ops.snnfast.recurrent_lif_events

    class Spy:
        def __call__(self, *args):
            seen.append(args[-1])
            return real(*args)

    monkeypatch.setattr(torch.ops.snnfast, "recurrent_lif_events", Spy())
    x, V, beta, *_ = op_inputs((8, 2, 40), torch.float32, seed=3, u0_kind=None)
    spikes, events = snnfast.recurrent_lif(x, V, beta, return_events=True)
    spikes_grad, _ = snnfast.recurrent_lif(x.requires_grad_(), V, beta, return_events=True)
    assert seen == [False, True]
    assert torch.equal(spikes, spikes_grad.detach()) and torch.equal(spikes, snnfast.recurrent_lif(x, V, beta))
    assert_events_of_spikes(events.offsets, events.indices, spikes)


def test_events_op_without_membrane_refuses_autograd():
    x, V, beta, alpha, threshold, u0 = op_inputs((6, 3, 20), torch.float32, seed=4, u0_kind=None)
    with pytest.raises(RuntimeError, match="save_membrane=False keeps no membrane trace"):
        torch.ops.snnfast.recurrent_lif_events(x.requires_grad_(), V, beta, alpha, threshold, u0,
                                               *OPTIONS["hard"], False, False)


@pytest.mark.parametrize("save_membrane", [True, False])
def test_opcheck(kernels, save_membrane):
    x, V, beta, alpha, threshold, u0 = (on(kernels, t) if torch.is_tensor(t) else t
                                        for t in op_inputs((6, 3, 40), torch.float64, seed=6, u0_kind="sample"))
    if save_membrane:  # the registered autograd (recurrent_lif's) where it keeps the trace
        x.requires_grad_(), V.requires_grad_(), beta.requires_grad_()
    args = (x, V, beta, alpha, threshold, u0, *OPTIONS["soft"], False, save_membrane)
    with context(kernels):
        torch.library.opcheck(torch.ops.snnfast.recurrent_lif_events.default, args,
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def test_compiles_fullgraph():
    # Under torch.compile the events are graph outputs of a dynamic size (the fake kernel).
    def f(x, V, beta):
        spikes, u_last, events = snnfast.recurrent_lif(x, V, beta, return_events=True, return_state=True)
        return spikes, u_last, events.offsets, events.indices

    x, V, beta, *_ = op_inputs((8, 3, 12), torch.float64, seed=16, u0_kind=None, shift=0.4, scale=0.8)
    leaves = [t.requires_grad_() for t in (x, V, beta)]
    grad_spikes = torch.randn(x.shape, generator=torch.Generator().manual_seed(17), dtype=torch.float64)
    results = []
    for fn in (f, torch.compile(f, fullgraph=True, backend="aot_eager")):
        spikes, u_last, offsets, indices = fn(*leaves)
        grads = torch.autograd.grad((spikes * grad_spikes).sum() + u_last.sum(), leaves)
        results.append((spikes, u_last, offsets, indices, *grads))
    for got, want in zip(*reversed(results)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert_events_of_spikes(results[1][2], results[1][3], results[1][0].detach())
    assert results[1][3].numel() > 0


def test_linear_lif_takes_the_attached_events(monkeypatch):
    # The spikes of recurrent_lif(return_events=True) carry the events its steps emitted: a
    # following LinearLIF on events (and event_linear) takes them, converting nothing, with
    # the results and gradients of the dense path.
    x, V, beta, *_ = op_inputs((15, 3, 50), torch.float64, seed=18, u0_kind=None, shift=0.4, scale=0.8)
    x.requires_grad_()
    spikes, events = snnfast.recurrent_lif(x, V, beta, return_events=True)
    assert events_ops.attached_events(spikes) is events
    torch.manual_seed(19)
    on_events = snnfast.nn.LinearLIF(50, 6, beta=0.5, events=True).double()
    dense = snnfast.nn.LinearLIF(50, 6, beta=0.5, events=False).double()
    dense.load_state_dict(on_events.state_dict())
    weight = torch.randn(6, 50, generator=torch.Generator().manual_seed(20), dtype=torch.float64)
    want_y, want = F.linear(spikes.detach(), weight), dense(spikes.detach())
    monkeypatch.setattr(events_ops, "to_events", lambda *a, **k: pytest.fail("the spikes were converted"))
    y = events_ops.event_linear(spikes, weight)
    out = on_events(spikes)
    torch.testing.assert_close(y, want_y, rtol=1e-12, atol=1e-12)
    assert torch.equal(out, want)
    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(21), dtype=torch.float64)
    (grad_x,) = torch.autograd.grad((out * grad_out).sum(), [x])
    spikes_plain = snnfast.recurrent_lif(x, V, beta)
    (want_grad_x,) = torch.autograd.grad((dense(spikes_plain) * grad_out).sum(), [x])
    torch.testing.assert_close(grad_x, want_grad_x, rtol=1e-12, atol=1e-12)
    assert grad_x.any()


@pytest.mark.skipif(not _library.LOADED, reason="snnfast._C is not built")
def test_bench_recurrent_events_runs(capsys):
    """bench/bench_recurrent_events.py at the smallest size: it checks the emitted events
    against the converted ones itself (an AssertionError otherwise) and prints a row per
    gain; no figure is checked."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "bench" / "bench_recurrent_events.py"
    spec = importlib.util.spec_from_file_location("bench_recurrent_events", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--T", "4", "--B", "3", "--N", "40", "--gains", "1.5", "3.0", "--rounds", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "%" in line]
    assert len(rows) == 2 and all(row.count("|") == 5 for row in rows)
