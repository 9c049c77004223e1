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
from snnfast.ops.event_linear import attached_events, event_linear, to_events
from snnfast.nn.linear import EVENT_CROSSOVER, EVENT_CROSSOVER_INFERENCE, uses_events
from snnfast.utils.memory import SavedTensorBytes

from emulated_cuda import CudaDevice, cuda_devices, launches, prepare
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


def test_to_events_by_warp_votes_emulated():
    # The CUDA conversion: one warp per row voting on tiles of 32 columns (count, then fill),
    # launched with its lanes meeting at each vote. N = 100: three full tiles and a partial one.
    spikes = torch.zeros(7, 100)
    spikes[1] = 1
    spikes[2, 0] = spikes[3, 99] = spikes[4, 64] = 1
    spikes[5, ::3] = 1
    spikes[6, 31:33] = 1  # a pair across two tiles
    emulated = prepare(CudaDevice("emulated"))
    before = launches()
    with emulated.kernels():
        events = to_events(spikes)
    assert launches()[1] - before[1] == 2 and launches()[0] == before[0]
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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_weight_t_views(kernels, dtype):
    """event_linear takes weight_t as the view weight.t() (the CPU transposes it by tiles), as a
    contiguous tensor, or any other strides (copied): the same bits each way. The shapes are
    not multiples of the 32 x 32 tiles."""
    spikes = on(kernels, random_spikes((5, 7, 45), 0.2, 14)).to(dtype)
    weight, bias = (on(kernels, t) for t in make_layer(45, 37, dtype, 15))
    wide = on(kernels, torch.randn(37, 90, dtype=dtype))
    wide[:, ::2] = weight
    with context(kernels):
        events = to_events(spikes)
        ways = {
            "contiguous": weight.t().contiguous(),
            "view": weight.t(),
            "strided": wide[:, ::2].t(),
        }
        assert not ways["view"].is_contiguous() and ways["view"].t().is_contiguous()
        ys = {name: torch.ops.snnfast.event_linear(events.offsets, events.indices, w, bias) for name, w in ways.items()}
    expected = F.linear(spikes.flatten(0, 1), weight, bias)
    for name, y in ys.items():
        assert torch.equal(y, ys["contiguous"]), name
        torch.testing.assert_close(y.cpu(), expected.cpu(), rtol=1e-12 if dtype == torch.float64 else 1e-5,
                                   atol=1e-12 if dtype == torch.float64 else 1e-5)


def test_event_checks(kernels):
    """The glue's checks of events it is handed, on each device (a GPU checks them with
    reductions there, the CPU with loops): each must be able to fail."""
    weight_t = on(kernels, torch.zeros(10, 3))
    offsets = on(kernels, torch.tensor([0, 2, 1, 3]))
    indices = on(kernels, torch.tensor([1, 2, 3], dtype=torch.int32))
    with context(kernels):
        with pytest.raises(RuntimeError, match="offsets must not decrease"):
            torch.ops.snnfast.event_linear(offsets, indices, weight_t, None)
        with pytest.raises(RuntimeError, match="offsets must not decrease"):
            torch.ops.snnfast.event_linear_weight_grad(offsets, indices, on(kernels, torch.zeros(3, 3)), 10)
        ascending = on(kernels, torch.tensor([0, 1, 2, 3]))
        for bad, shown in ((-1, "-1 .. 3"), (10, "1 .. 10")):
            wrong = on(kernels, torch.tensor([1, bad, 3] if bad < 0 else [1, 2, bad], dtype=torch.int32))
            with pytest.raises(RuntimeError, match=f"indices must lie in \\[0, 10\\).*got {shown}"):
                torch.ops.snnfast.event_linear(ascending, wrong, weight_t, None)
        # Indices outside the rows' range are not read, so not checked.
        part = on(kernels, torch.tensor([1, 2]))
        y = torch.ops.snnfast.event_linear(part, on(kernels, torch.tensor([-5, 2, 99], dtype=torch.int32)),
                                           weight_t, None)
        assert y.shape == (1, 3)


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
    # Between the two crossovers: events in inference only.
    middle = random_spikes((30, 4, 50), (EVENT_CROSSOVER + EVENT_CROSSOVER_INFERENCE) / 2, 22)
    high = random_spikes((30, 4, 50), min(1.0, EVENT_CROSSOVER_INFERENCE * 3), 21)
    for training in (True, False):
        assert uses_events(low, weight, "auto", training=training)
        assert not uses_events(high, weight, "auto", training=training)
        assert uses_events(high, weight, True, training=training)
        assert not uses_events(low, weight, False, training=training)
        assert not uses_events(low.half(), weight.half(), "auto", training=training)  # no half kernel: dense
    assert uses_events(middle, weight, "auto", training=False)
    assert not uses_events(middle, weight, "auto", training=True)
    with pytest.raises(ValueError, match="events=True needs float32 or float64"):
        uses_events(low.half(), weight.half(), True, training=True)
    with pytest.raises(ValueError, match='events must be "auto", True or False'):
        snnfast.nn.LinearLIF(50, 4, beta=0.5, events="yes")


def test_linear_lif_auto_crossover_follows_autograd():
    """The layer itself picks the inference crossover where autograd records nothing: its
    output spikes carry events only where it ran on events."""
    spikes = random_spikes((20, 3, 40), (EVENT_CROSSOVER + EVENT_CROSSOVER_INFERENCE) / 2, 23)
    layer = snnfast.nn.LinearLIF(40, 8, beta=0.5)
    with torch.no_grad():
        assert attached_events(layer(spikes)) is not None
    assert attached_events(layer(spikes)) is None  # the weight requires grad: training


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


# --- the LIF op's own events (lif_events) --------------------------------------------------

LIF_OPTIONS = {"hard": ("hard", 0.0, False, "sigmoid", 4.0), "soft": ("soft", 0.0, False, "rectangle", 1.0)}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("save_membrane", [True, False])
@pytest.mark.parametrize("params", ["neuron_u0", "scalar_no_u0"])
# N > 256 (a row over several of the CPU kernel's blocks, over several of the CUDA
# conversion's tiles), N not dividing 256 (blocks ending within a sample), one neuron, and
# the empty cases (B * N = 0, T = 0).
@pytest.mark.parametrize("shape", [(12, 3, 700), (25, 7, 100), (10, 4, 256), (9, 5, 1), (0, 2, 5), (3, 0, 4),
                                   (4, 2, 3, 6)])
def test_lif_events_equal_events_of_reference(kernels, dtype, reset, save_membrane, params, shape):
    gen = torch.Generator().manual_seed(sum(shape) + save_membrane)
    x = (1.2 * torch.randn(shape, generator=gen, dtype=torch.float64)).to(dtype)
    if params == "neuron_u0":
        beta = 0.3 + 0.6 * torch.rand(shape[2:], generator=gen, dtype=dtype)
        u0 = torch.randn(shape[1:], generator=gen, dtype=dtype)
    else:
        beta, u0 = torch.tensor(0.7, dtype=torch.float64), None
    alpha, threshold = torch.tensor(0.8, dtype=dtype), torch.tensor(1.0, dtype=dtype)
    options = LIF_OPTIONS[reset]
    args = (beta, alpha, threshold, u0, *options, save_membrane)
    with context(kernels):
        outputs = torch.ops.snnfast.lif_events(on(kernels, x), *(on(kernels, a) if torch.is_tensor(a) else a
                                                                 for a in args))
    spikes, membrane, u_last, offsets, indices = (t.cpu() for t in outputs)
    ref_spikes, ref_u_last, ref_membrane = snnfast.reference.lif(
        x, beta, alpha=alpha, threshold=threshold, u0=u0, reset=reset, surrogate=options[3],
        return_state=True, return_membrane=True)
    # Rows are the T x B samples, of all the neurons F each.
    want_offsets, want_indices = expected_events(ref_spikes.flatten(2))
    assert torch.equal(offsets, want_offsets) and torch.equal(indices, want_indices)
    # The events are those of the spikes the op returns, which are the plain op's.
    assert torch.equal(spikes, ref_spikes)
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(u_last, ref_u_last, rtol=rtol, atol=atol)
    if save_membrane:
        torch.testing.assert_close(membrane, ref_membrane, rtol=rtol, atol=atol)
    else:
        assert membrane.numel() == 0
    if kernels is not None:
        # The CPU op's results: its bits on the emulated device (one arithmetic, lif_step.h).
        cpu = torch.ops.snnfast.lif_events(x, *args)
        same = torch.equal if kernels.emulated else (lambda a, b: torch.allclose(a, b, rtol=rtol, atol=atol))
        for got, want in zip((spikes, membrane, u_last, offsets, indices), cpu):
            assert got.dtype == want.dtype and same(got, want)


def test_lif_events_opcheck(kernels):
    x = on(kernels, torch.randn(6, 3, 40))
    args = (x, torch.tensor(0.5), torch.tensor(1.0), torch.tensor(1.0), None, "hard", 0.0, False, "sigmoid", 4.0)
    with context(kernels):
        for save_membrane in (True, False):
            torch.library.opcheck(torch.ops.snnfast.lif_events.default, (*args, save_membrane),
                                  test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


# --- the fused LinearLIF forward (event_linear_lif) ------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("save_membrane", [True, False])
@pytest.mark.parametrize("params", ["neuron_u0", "scalar_no_u0"])
# out > 256 (a sample over several of the CPU kernel's blocks), out not dividing 256 (blocks
# ending within a sample), under the 64 features of a register tile, no bias, and the empty
# cases (T = 0, B = 0, no events at all).
@pytest.mark.parametrize("T, B, n_in, n_out, rate, bias", [(12, 3, 700, 300, 0.05, True), (9, 5, 40, 20, 0.2, True),
                                                           (6, 2, 33, 70, 0.3, False), (4, 3, 10, 1, 0.5, True),
                                                           (0, 2, 5, 4, 0.5, True), (3, 0, 5, 4, 0.5, True),
                                                           (5, 2, 8, 6, 0.0, True)])
def test_event_linear_lif_equals_linear_then_lif(kernels, dtype, save_membrane, params, T, B, n_in, n_out, rate, bias):
    """event_linear_lif against the reference LIF of F.linear; and bit for bit against
    event_linear then lif_events, the two ops it fuses (one summation order)."""
    spikes = random_spikes((T, B, n_in), rate, T + B + n_in, dtype)
    weight, b = make_layer(n_in, n_out, dtype, n_out, bias)
    gen = torch.Generator().manual_seed(n_out)
    if params == "neuron_u0":
        beta = 0.3 + 0.6 * torch.rand(n_out, generator=gen, dtype=dtype)
        u0 = torch.randn(B, n_out, generator=gen, dtype=dtype)
    else:
        beta, u0 = torch.tensor(0.7, dtype=torch.float64), None
    neuron = (beta, torch.tensor(0.8, dtype=dtype), torch.tensor(1.0, dtype=dtype), u0, *LIF_OPTIONS["hard"])
    neuron = tuple(on(kernels, a) if torch.is_tensor(a) else a for a in neuron)
    w, bb = on(kernels, weight), (on(kernels, b) if bias else None)
    with context(kernels):
        events = to_events(on(kernels, spikes))
        fused = torch.ops.snnfast.event_linear_lif(events.offsets, events.indices, w.t(), bb, T, B, *neuron,
                                                   save_membrane)
        current = torch.ops.snnfast.event_linear(events.offsets, events.indices, w.t(), bb).view(T, B, n_out)
        two_ops = torch.ops.snnfast.lif_events(current, *neuron, save_membrane)
    for got, want in zip(fused, two_ops):
        assert got.dtype == want.dtype and torch.equal(got, want)
    ref_spikes, ref_u_last, ref_membrane = snnfast.reference.lif(
        F.linear(spikes, weight, b), beta, alpha=neuron[1].cpu(), threshold=neuron[2].cpu(), u0=u0, reset="hard",
        surrogate="sigmoid", return_state=True, return_membrane=True)
    out_spikes, membrane, u_last, offsets, indices = (t.cpu() for t in fused)
    rtol, atol = TOLERANCE[dtype]
    if dtype == torch.float64:  # float32 spikes may flip where the current's rounding differs
        assert torch.equal(out_spikes, ref_spikes)
        torch.testing.assert_close(u_last, ref_u_last, rtol=rtol, atol=atol)
        if save_membrane:
            torch.testing.assert_close(membrane, ref_membrane, rtol=rtol, atol=atol)
    assert membrane.numel() == (out_spikes.numel() if save_membrane else 0)
    want_offsets, want_indices = expected_events(out_spikes)
    assert torch.equal(offsets, want_offsets) and torch.equal(indices, want_indices)


def test_event_linear_lif_errors_and_opcheck(kernels):
    spikes = on(kernels, random_spikes((6, 3, 20), 0.3, 16))
    weight, bias = (on(kernels, t) for t in make_layer(20, 9, torch.float32, 17))
    neuron = (torch.tensor(0.5), torch.tensor(1.0), torch.tensor(1.0), None, *LIF_OPTIONS["hard"])
    with context(kernels):
        events = to_events(spikes)
        with pytest.raises(RuntimeError, match="offsets must have T x B \\+ 1 = 16 values"):
            torch.ops.snnfast.event_linear_lif(events.offsets, events.indices, weight.t(), bias, 5, 3, *neuron, True)
        with pytest.raises(RuntimeError, match="indices must lie in \\[0, 10\\)"):
            torch.ops.snnfast.event_linear_lif(events.offsets, events.indices, weight[:, :10].t(), bias, 6, 3,
                                               *neuron, True)
        for save_membrane in (True, False):
            torch.library.opcheck(torch.ops.snnfast.event_linear_lif.default,
                                  (events.offsets, events.indices, weight.t(), bias, 6, 3, *neuron, save_membrane),
                                  test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


# --- LinearLIF -> LinearLIF on the events the first one emits ------------------------------

def _two_layers(events, dtype, sizes=(60, 300, 7)):
    torch.manual_seed(sum(sizes))
    layers = [snnfast.nn.LinearLIF(i, o, beta=0.5, alpha=0.5, surrogate="sigmoid", events=events, dtype=dtype)
              for i, o in zip(sizes, sizes[1:])]
    with torch.no_grad():
        # The hidden layer fires at about 6 %, the output layer at about 2 % (0.05 input rate).
        layers[0].weight.mul_(10.0)
        layers[1].weight.mul_(6.0)
    return layers


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("grad", [True, False])
def test_linear_lif_passes_its_events_on(kernels, monkeypatch, dtype, grad):
    # On every device: the events path (lif_events emitting the hidden layer's events) against
    # the dense one (the input saved as bits: spikes_to_bits, bits_to_spikes), both there.
    T, B = 21, 3
    x = on(kernels, random_spikes((T, B, 60), 0.05, 30, dtype))
    dense, fused = ([layer.to(x.device) for layer in _two_layers(events, dtype)] for events in (False, True))
    with context(kernels), torch.set_grad_enabled(grad):
        hidden = fused[0](x)
        carried = snnfast.ops.event_linear.attached_events(hidden)
        assert carried is not None
        want_offsets, want_indices = expected_events(hidden.detach().cpu())
        assert torch.equal(carried.offsets.cpu(), want_offsets) and torch.equal(carried.indices.cpu(), want_indices)
        assert 0 < carried.rate < EVENT_CROSSOVER
        # The second layer takes the carried events: no conversion.
        converted = []
        real = snnfast.ops.event_linear.to_events
        monkeypatch.setattr(snnfast.ops.event_linear, "to_events", lambda *a, **k: converted.append(1) or real(*a, **k))
        out = fused[1](hidden)
        assert not converted
        monkeypatch.setattr(snnfast.ops.event_linear, "to_events", real)
        want = dense[1](dense[0](x))
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(out, want, rtol=rtol, atol=atol)
    if grad:
        labels = on(kernels, torch.arange(B) % 7)
        with context(kernels):
            for layers, result in ((fused, out), (dense, want)):
                F.cross_entropy(result.mean(0), labels).backward()
        for f, d in zip(fused, dense):
            torch.testing.assert_close(f.weight.grad, d.weight.grad, **LAYER_TOLERANCE[dtype])
            torch.testing.assert_close(f.bias.grad, d.bias.grad, **LAYER_TOLERANCE[dtype])


def test_carried_events_dropped_after_in_place_change():
    x = random_spikes((10, 2, 60), 0.05, 31)
    layer = _two_layers(True, torch.float32)[0]
    with torch.no_grad():
        hidden = layer(x)
    assert snnfast.ops.event_linear.attached_events(hidden) is not None
    hidden[0].fill_(1.0)
    assert snnfast.ops.event_linear.attached_events(hidden) is None
    # event_linear then converts the changed spikes.
    weight = torch.randn(4, 300)
    torch.testing.assert_close(event_linear(hidden, weight), F.linear(hidden, weight))


def test_dense_linear_lif_without_graph_is_linear_and_lif():
    # Where autograd records nothing, LinearLIF is nn.Linear + snnfast.lif: the same bits.
    x = random_spikes((30, 4, 50), 0.3, 32)
    layer = snnfast.nn.LinearLIF(50, 20, beta=0.5, alpha=0.5, surrogate="sigmoid", events=False)
    with torch.no_grad():
        want = snnfast.lif(F.linear(x, layer.weight, layer.bias), 0.5, alpha=0.5, surrogate="sigmoid")
        assert torch.equal(layer(x), want)


@pytest.mark.parametrize("rates", [["3"], ["0"], ["-0.1"], ["0.03", "1.5"]])
def test_bench_events_rejects_rates_that_are_not_fractions(rates, capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "bench" / "bench_events.py"
    spec = importlib.util.spec_from_file_location("bench_events", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    with pytest.raises(SystemExit):
        bench.main(["--rates", *rates])
    assert "--rates takes spike rates as fractions in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("dtype", SPIKE_DTYPES, ids=str)
@pytest.mark.parametrize("shape,rate", [((7, 3, 45), 0.1), ((2, 5, 64), 1.0), ((4, 6, 33), 0.0), ((0, 3, 8), 0.5),
                                        ((5, 70), 0.5), ((4, 0), 0.5), ((3, 1), 1.0), ((2, 3, 7), 1.0)])
def test_spikes_to_bits_is_bitpack(kernels, dtype, shape, rate):
    # Against bitpack's torch ops (the format's definition); the output starts poisoned
    # (0xFF bytes, SNNFAST_POISON=1), so a byte the kernel leaves or a padding bit it sets
    # fails. N = 45, 33, 70, 7, 1: rows ending within a byte.
    from snnfast.longseq import bitpack

    spikes = random_spikes(shape, rate, seed=sum(shape) + 1, dtype=dtype)
    with context(kernels):
        packed = torch.ops.snnfast.spikes_to_bits(on(kernels, spikes), True)
    assert torch.equal(packed.cpu(), bitpack.pack_bits(spikes))


@pytest.mark.parametrize("value", [0.5, -1.0, 2.0, float("nan")])
def test_spikes_to_bits_checks_binary(kernels, value):
    from snnfast.longseq import bitpack

    spikes = torch.zeros(3, 4, 40)
    spikes[1, 2, 37] = value
    with context(kernels):
        with pytest.raises(RuntimeError, match="spikes must hold only 0 and 1"):
            torch.ops.snnfast.spikes_to_bits(on(kernels, spikes), True)
        packed = torch.ops.snnfast.spikes_to_bits(on(kernels, spikes), False)
    assert torch.equal(packed.cpu(), bitpack.pack_bits(spikes))


def test_spikes_to_bits_opcheck(kernels):
    with context(kernels):
        torch.library.opcheck(torch.ops.snnfast.spikes_to_bits.default,
                              (on(kernels, random_spikes((6, 3, 20), 0.3, 40)), True),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(7, 3, 45), (2, 5, 64), (0, 3, 8), (5, 70), (4, 0), (3, 1), (2, 3, 7)])
def test_bits_to_spikes_is_bitpack(kernels, dtype, shape):
    # The output starts as NaN (SNNFAST_POISON=1): every element must be written.
    from snnfast.longseq import bitpack

    spikes = random_spikes(shape, 0.3, seed=sum(shape) + 2)
    packed = bitpack.pack_bits(spikes)
    with context(kernels):
        unpacked = torch.ops.snnfast.bits_to_spikes(on(kernels, packed), shape[-1], dtype)
        torch.library.opcheck(torch.ops.snnfast.bits_to_spikes.default, (on(kernels, packed), shape[-1], dtype),
                              test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
    assert unpacked.dtype == dtype and torch.equal(unpacked.cpu(), spikes.to(dtype))
    assert torch.equal(unpacked.cpu(), bitpack.unpack_bits(packed, shape[-1], dtype))


def test_bits_round_trip_of_a_time_slice(kernels):
    # A slice of the packed steps (non-contiguous is fine: the glue makes it contiguous).
    spikes = random_spikes((9, 4, 37), 0.4, seed=41)
    with context(kernels):
        packed = torch.ops.snnfast.spikes_to_bits(on(kernels, spikes), True)
        back = torch.ops.snnfast.bits_to_spikes(packed[2:7], 37, torch.float64)
    assert torch.equal(back.cpu(), spikes[2:7].double())


def test_event_layers_compile_fullgraph_without_grad():
    # Under torch.compile the layers convert (no attached events in a traced graph). With
    # autograd recording, events=True does not compile yet: the conversion's unbacked size
    # inside the autograd.Function (PendingUnbackedSymbolNotFound), as before the LIF op's events.
    net = torch.nn.Sequential(*_two_layers(True, torch.float32))
    x = random_spikes((10, 3, 60), 0.05, 33)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(net, fullgraph=True)(x), net(x))
