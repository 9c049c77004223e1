"""The event ops (snnfast.event_linear) against their dense definitions: the events of a spike
tensor against torch.nonzero, and event_linear's output and every gradient against
F.linear on the dense spikes, with the same random grad_out through both, on fresh random
inputs; on the CPU kernels and on the emulated CUDA device (tests/emulated_cuda.py).
Outputs are poisoned before the kernels run (conftest.py: SNNFAST_POISON=1)."""
from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast.ops.event_linear import event_linear, to_events
from snnfast.nn.linear import EVENT_CROSSOVER, uses_events
from snnfast.utils.memory import SavedTensorBytes

from emulated_cuda import CudaDevice, cuda_devices, prepare
from test_nn_linear import _fused_layer, _linear_lif_case, _plain_layer, _run_layer

# (rtol, atol): the event sum adds the same products as the dense one, in another order.
TOLERANCE = {torch.float64: (1e-12, 1e-12), torch.float32: (1e-5, 1e-5)}
SPIKE_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.bool, torch.uint8)


def random_spikes(shape, rate, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=gen) < rate).to(dtype)


def expected_events(spikes):
    rows = spikes.reshape(spikes.shape[:-1].numel(), spikes.shape[-1]) != 0
    counts = rows.sum(1)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), counts.cumsum(0)])
    indices = rows.nonzero()[:, 1].to(torch.int32)  # row-major: ascending within a row
    return offsets, indices


@pytest.fixture(params=["cpu"] + [str(d) for d in cuda_devices()])
def kernels(request):
    """Where the ops run: None for the CPU kernels, else a CudaDevice (emulated or a GPU)."""
    return None if request.param == "cpu" else prepare(CudaDevice(request.param))


def on(kernels, t):
    return t.to("cuda") if kernels is not None and kernels.name == "cuda" else t


def context(kernels):
    return contextlib.nullcontext() if kernels is None else kernels.kernels()


@pytest.mark.parametrize("dtype", SPIKE_DTYPES, ids=str)
@pytest.mark.parametrize("shape,rate", [((7, 3, 45), 0.1), ((2, 5, 64), 1.0), ((4, 6, 33), 0.0), ((0, 3, 8), 0.5),
                                        ((5, 70), 0.5), ((4, 0), 0.5)])
def test_to_events(kernels, dtype, shape, rate):
    spikes = random_spikes(shape, rate, seed=sum(shape), dtype=dtype)
    with context(kernels):
        events = to_events(on(kernels, spikes))
    offsets, indices = expected_events(spikes)
    assert torch.equal(events.offsets.cpu(), offsets)
    assert torch.equal(events.indices.cpu(), indices)
    assert events.shape == spikes.shape
    assert torch.equal(events.to_dense(torch.float32).cpu(), spikes.float())


def test_to_events_rows_of_every_kind():
    # An empty row, a full row, a single spike at either end, a spike after a long gap (the
    # CPU kernel skips blocks of 32 zeros).
    spikes = torch.zeros(6, 100)
    spikes[1] = 1
    spikes[2, 0] = 1
    spikes[3, 99] = 1
    spikes[4, 64] = 1
    spikes[5, ::3] = 1
    events = to_events(spikes)
    offsets, indices = expected_events(spikes)
    assert torch.equal(events.offsets, offsets) and torch.equal(events.indices, indices)


def test_negative_zero_is_no_spike():
    spikes = torch.tensor([[0.0, -0.0, 1.0, -0.0]])
    events = to_events(spikes)
    assert events.indices.tolist() == [2]


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, float("nan")])
def test_non_binary_spikes_rejected(kernels, value):
    spikes = torch.zeros(3, 4, 10)
    spikes[1, 2, 7] = value
    with context(kernels), pytest.raises(RuntimeError, match="spikes must hold only 0 and 1"):
        to_events(on(kernels, spikes))
    # By design, check_binary=False counts every nonzero value as a spike (as bitpack does).
    with context(kernels):
        events = to_events(on(kernels, spikes), check_binary=False)
    assert events.indices.tolist() == [7] and events.offsets[-1].item() == 1


def test_spike_dtype_rejected():
    with pytest.raises(RuntimeError, match="spikes must be float32, float64.*got Int"):
        to_events(torch.zeros(3, 4, dtype=torch.int32))


def make_layer(n_in, n_out, dtype, seed, bias=True):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(n_out, n_in, generator=gen, dtype=dtype)
    b = torch.randn(n_out, generator=gen, dtype=dtype) if bias else None
    return weight, b


def linear_and_grads(fn, spikes, weight, bias, grad_out, spikes_grad):
    leaves = [weight] + ([bias] if bias is not None else []) + ([spikes] if spikes_grad else [])
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    w, b = leaves[0], leaves[1] if bias is not None else None
    s = leaves[-1] if spikes_grad else spikes
    y = fn(s, w, b)
    grads = torch.autograd.grad(y, leaves, grad_out)
    return y.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("shape,n_out,rate", [((20, 4, 70), 33, 0.05), ((6, 3, 64), 16, 1.0),
                                              ((5, 2, 40), 7, 0.0), ((0, 4, 12), 5, 0.3), ((9, 100), 260, 0.2)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("spikes_grad", [True, False])
def test_event_linear_matches_dense(kernels, dtype, shape, n_out, rate, bias, spikes_grad):
    seed = sum(shape) + n_out
    spikes = random_spikes(shape, rate, seed, dtype)
    weight, b = make_layer(shape[-1], n_out, dtype, seed + 1, bias)
    grad_out = torch.randn(*shape[:-1], n_out, generator=torch.Generator().manual_seed(seed + 2), dtype=dtype)
    expected = linear_and_grads(F.linear, spikes, weight, b, grad_out, spikes_grad)
    moved = [on(kernels, t) if t is not None else None for t in (spikes, weight, b, grad_out)]
    with context(kernels):
        actual = linear_and_grads(event_linear, *moved, spikes_grad)
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(actual[0].cpu(), expected[0], rtol=rtol, atol=atol)
    assert len(actual[1]) == len(expected[1])
    for got, want in zip(actual[1], expected[1]):
        torch.testing.assert_close(got.cpu(), want, rtol=rtol, atol=atol)


def test_events_input_has_no_gradient():
    spikes = random_spikes((8, 2, 30), 0.2, 3)
    weight, bias = make_layer(30, 6, torch.float32, 4)
    weight.requires_grad_()
    y = event_linear(to_events(spikes), weight, bias)
    torch.testing.assert_close(y, F.linear(spikes, weight, bias))
    (grad_weight,) = torch.autograd.grad(y.sum(), [weight])
    torch.testing.assert_close(grad_weight, torch.ones(8, 2, 6).flatten(0, 1).t() @ spikes.flatten(0, 1))


def test_weight_grad_deterministic_over_thread_counts():
    spikes = random_spikes((50, 4, 90), 0.2, 5)
    events = to_events(spikes)
    grad_y = torch.randn(200, 20)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append(torch.ops.snnfast.event_linear_weight_grad(events.offsets, events.indices, grad_y, 90))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(r, results[0]) for r in results)


def test_cpu_and_cuda_forward_same_bits():
    # Both add the bias, then the weight rows in ascending order of the events.
    spikes = random_spikes((12, 3, 50), 0.3, 6)
    weight, bias = make_layer(50, 40, torch.float32, 7)
    events = to_events(spikes)
    cpu = torch.ops.snnfast.event_linear(events.offsets, events.indices, weight.t().contiguous(), bias)
    with prepare(CudaDevice("emulated")).kernels():
        emulated = torch.ops.snnfast.event_linear(events.offsets, events.indices, weight.t().contiguous(), bias)
    assert torch.equal(cpu, emulated)


def test_row_slice():
    spikes = random_spikes((10, 3, 20), 0.3, 8)
    weight, bias = make_layer(20, 5, torch.float64, 9)
    events = to_events(spikes.double())
    part = events.row_slice(6, 15)  # steps 2 .. 4
    y = event_linear(part, weight, bias)
    torch.testing.assert_close(y, F.linear(spikes.double()[2:5].flatten(0, 1), weight, bias), rtol=1e-12, atol=1e-12)


def test_argument_errors():
    events = to_events(random_spikes((4, 10), 0.5, 10))
    weight, bias = make_layer(10, 3, torch.float32, 11)
    with pytest.raises(ValueError, match="10 features.*expects 12"):
        event_linear(events, torch.zeros(3, 12))
    with pytest.raises(TypeError, match="weight must be float32 or float64"):
        event_linear(events, weight.half())
    with pytest.raises(RuntimeError, match="indices must lie in \\[0, 5\\)"):
        torch.ops.snnfast.event_linear(events.offsets, events.indices, torch.zeros(5, 3), None)
    with pytest.raises(RuntimeError, match="offsets must run"):
        torch.ops.snnfast.event_linear(events.offsets + 100, events.indices, weight.t().contiguous(), None)
    with pytest.raises(RuntimeError, match="offsets must be a 1-d int64"):
        torch.ops.snnfast.event_linear(events.offsets.int(), events.indices, weight.t().contiguous(), None)
    with pytest.raises(RuntimeError, match="bias must be \\[3\\]"):
        torch.ops.snnfast.event_linear(events.offsets, events.indices, weight.t().contiguous(), torch.zeros(4))
    with pytest.raises(RuntimeError, match="grad_y must be \\[rows, out_features\\]"):
        torch.ops.snnfast.event_linear_weight_grad(events.offsets, events.indices, torch.zeros(5, 3), 10)


def test_opcheck(kernels):
    spikes = on(kernels, random_spikes((6, 3, 20), 0.3, 12))
    weight, bias = (on(kernels, t) for t in make_layer(20, 9, torch.float32, 13))
    with context(kernels):
        events = to_events(spikes)
        torch.library.opcheck(torch.ops.snnfast.event_linear.default,
                              (events.offsets, events.indices, weight.t().contiguous(), bias))
        torch.library.opcheck(torch.ops.snnfast.event_linear_weight_grad.default,
                              (events.offsets, events.indices, on(kernels, torch.randn(18, 9)), 20))
        torch.library.opcheck(torch.ops.snnfast.spikes_to_events.default, (spikes, True),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


# --- LinearLIF on events -------------------------------------------------------------------

LAYER_TOLERANCE = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=1e-4, atol=1e-5)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("segment", [None, 4])
@pytest.mark.parametrize("reset,surrogate_name", [("hard", "rectangle"), ("soft", "sigmoid")])
def test_linear_lif_events_equal_dense(device, dtype, segment, reset, surrogate_name):
    # The same random inputs and grad_out through LinearLIF on the events, LinearLIF dense
    # and nn.Linear + snnfast.lif: outputs and every gradient.
    leaves, grads_out = _linear_lif_case(device, dtype, T=17, B=3, n_in=40, n_out=9)
    options = dict(reset=reset, surrogate=surrogate_name, segment=segment)
    want = _run_layer(_plain_layer, leaves, grads_out, reset=reset, surrogate=surrogate_name)
    dense = _run_layer(_fused_layer, leaves, grads_out, events=False, **options)
    got = _run_layer(_fused_layer, leaves, grads_out, events=True, **options)
    names = ["spikes", "u_last"] + ["grad_" + k for k in leaves]
    for name, g, d, w in zip(names, got, dense, want):
        torch.testing.assert_close(g, w, **LAYER_TOLERANCE[dtype], msg=lambda m: f"{name} vs plain: {m}")
        torch.testing.assert_close(g, d, **LAYER_TOLERANCE[dtype], msg=lambda m: f"{name} vs dense: {m}")


def test_linear_lif_auto_picks_by_rate():
    weight = torch.zeros(4, 50)
    low = random_spikes((30, 4, 50), EVENT_CROSSOVER / 4, 20)
    high = random_spikes((30, 4, 50), min(1.0, EVENT_CROSSOVER * 3), 21)
    assert uses_events(low, weight, "auto") and not uses_events(high, weight, "auto")
    assert uses_events(high, weight, True) and not uses_events(low, weight, False)
    assert not uses_events(low.half(), weight.half(), "auto")  # no half event kernel: dense
    with pytest.raises(ValueError, match="events=True needs float32 or float64"):
        uses_events(low.half(), weight.half(), True)
    with pytest.raises(ValueError, match='events must be "auto", True or False'):
        snnfast.nn.LinearLIF(50, 4, beta=0.5, events="yes")


def test_linear_lif_events_save_events_not_bits():
    T, B, n_in, n_out = 20, 3, 64, 5
    layer = snnfast.nn.LinearLIF(n_in, n_out, beta=0.5, events=True)
    spikes_in = random_spikes((T, B, n_in), 0.02, 22).requires_grad_(True)
    nnz = int(spikes_in.count_nonzero())
    with SavedTensorBytes() as saved:
        layer(spikes_in)
    expected = ((T * B + 1) * 8 + nnz * 4            # the input's events
                + (n_out * n_in + n_out) * 4         # weight and bias
                + T * B * n_out * 4                  # membrane trace
                + 3 * 8)                             # beta, alpha, threshold
    assert saved.total == expected


def test_linear_lif_events_reject_non_binary():
    layer = snnfast.nn.LinearLIF(4, 3, beta=0.5, events=True)
    spikes = torch.zeros(2, 1, 4)
    spikes[1, 0, 2] = 0.5
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer(spikes)
