"""The event-driven Conv2d (snnfast.ops.event_conv, snnfast.nn.EventConv2d) against F.conv2d on
the dense spikes: the output and every gradient (weight, bias, input) with the same random
grad_out through both, in float64 and float32, on fresh random inputs from one generator of
cases (strides, paddings, non-square kernels and inputs, empty rows, rows with every input
firing). Outputs are poisoned before the kernels run (conftest.py: SNNFAST_POISON=1), so an
element a kernel leaves unwritten is NaN and fails."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast.nn import EventConv2d
from snnfast.nn.linear import EVENT_CROSSOVER
from snnfast.ops import event_conv
from snnfast.ops.event_conv import event_conv2d
from snnfast.ops.event_linear import to_events

# (rtol, atol): the event sums add the same products as F.conv2d, in another order.
TOLERANCE = {torch.float64: (1e-10, 1e-10), torch.float32: (1e-5, 1e-4)}


# N, in_channels, H, W, out_channels, kernel, stride, padding, rate, bias
CASES = [
    (3, 2, 9, 7, 4, (3, 3), 1, 0, 0.2, True),
    (4, 1, 6, 10, 5, (2, 4), (2, 1), (1, 2), 0.3, False),  # non-square everything
    (2, 12, 5, 5, 3, (3, 3), 2, 2, 0.1, True),  # padding 2 at stride 2: taps off the output's end
    (5, 3, 8, 8, 7, (5, 5), 1, 2, 0.05, True),  # some rows without a spike
    (3, 4, 7, 6, 70, (3, 2), 2, 1, 0.2, True),  # out_channels over a vector's multiple
    (3, 5, 6, 5, 6, (3, 3), 1, 1, 1.0, True),  # every input fires
    (4, 3, 6, 6, 5, (3, 3), 2, 0, 0.0, True),  # no spike at all
    (2, 3, 4, 4, 5, (4, 4), 1, 0, 0.5, True),  # the kernel covers the input: one output position
    (3, 6, 5, 7, 9, (1, 1), (1, 2), 0, 0.4, False),  # 1 x 1 kernel
    (0, 2, 5, 5, 3, (3, 3), 1, 1, 0.5, True),  # no rows
    (3, 2, 2, 3, 4, (3, 3), 1, 1, 0.6, True),  # input smaller than the kernel, padded
]


def case_id(case):
    n, c, h, w, o, k, s, p, rate, bias = case
    return f"{n}x{c}x{h}x{w}-{o}-k{k}-s{s}-p{p}-r{rate}-{'b' if bias else 'nob'}"


def make_case(case, dtype, seed=0):
    """spikes [N, C, H, W], weight, bias (or None), stride, padding, grad_out."""
    n, c, h, w, o, kernel, stride, padding, rate, bias = case
    gen = torch.Generator().manual_seed(seed + sum((n, c, h, w, o)))
    spikes = (torch.rand(n, c, h, w, generator=gen) < rate).to(dtype)
    if n >= 3 and 0 < rate < 1:
        spikes[1] = 0  # an empty row between two others
    weight = torch.randn(o, c, *kernel, generator=gen, dtype=dtype)
    b = torch.randn(o, generator=gen, dtype=dtype) if bias else None
    stride = (stride, stride) if isinstance(stride, int) else stride
    padding = (padding, padding) if isinstance(padding, int) else padding
    grad_out = torch.randn(F.conv2d(spikes, weight, b, stride, padding).shape, generator=gen, dtype=dtype)
    return spikes, weight, b, stride, padding, grad_out


def conv_and_grads(fn, spikes, weight, bias, stride, padding, grad_out, spikes_grad):
    leaves = [weight] + ([bias] if bias is not None else []) + ([spikes] if spikes_grad else [])
    leaves = [t.detach().clone().requires_grad_() for t in leaves]
    w, b = leaves[0], leaves[1] if bias is not None else None
    s = leaves[-1] if spikes_grad else spikes
    y = fn(s, w, b, stride, padding)
    grads = torch.autograd.grad(y, leaves, grad_out, allow_unused=False)
    return y.detach(), grads


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("case", CASES, ids=case_id)
@pytest.mark.parametrize("spikes_grad", [True, False])
def test_event_conv2d_matches_conv2d(dtype, case, spikes_grad):
    spikes, weight, bias, stride, padding, grad_out = make_case(case, dtype)
    expected = conv_and_grads(F.conv2d, spikes, weight, bias, stride, padding, grad_out, spikes_grad)
    actual = conv_and_grads(event_conv2d, spikes, weight, bias, stride, padding, grad_out, spikes_grad)
    rtol, atol = TOLERANCE[dtype]
    assert actual[0].shape == expected[0].shape and actual[0].dtype == dtype
    torch.testing.assert_close(actual[0], expected[0], rtol=rtol, atol=atol)
    assert len(actual[1]) == len(expected[1])
    for got, want in zip(actual[1], expected[1]):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol)


def test_output_is_channels_last():
    spikes, weight, bias, stride, padding, _ = make_case(CASES[0], torch.float32)
    y = event_conv2d(spikes, weight, bias, stride, padding)
    assert y.is_contiguous(memory_format=torch.channels_last)


def ops_args(case, dtype, seed=0):
    """The ops' arguments for a case: the events of its spikes, weight_t, and grad_y [N, out_h,
    out_w, out] (channels-last)."""
    spikes, weight, bias, stride, padding, grad_out = make_case(case, dtype, seed)
    n, c, h, w = spikes.shape
    events = to_events(spikes.reshape(n, c * h * w))
    weight_t = weight.permute(1, 2, 3, 0).contiguous()
    conv = (events.offsets, events.indices, weight_t, bias, h, w, list(stride), list(padding))
    grad = (events.offsets, events.indices, grad_out.permute(0, 2, 3, 1).contiguous(), c, h, w,
            list(weight.shape[2:]), list(stride), list(padding))
    return conv, grad


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_ops_same_bits_over_thread_counts(case):
    # Rows are summed in event order, the weight gradient by chunks of rows fixed by the shape:
    # the same bits on 1 and 2 threads. 40 rows: the weight gradient over three chunks.
    n, *rest = case
    conv, grad = ops_args((max(n, 40), *rest), torch.float32)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            results.append((torch.ops.snnfast.event_conv2d(*conv), torch.ops.snnfast.event_conv2d_weight_grad(*grad)))
    finally:
        torch.set_num_threads(threads)
    for got, want in zip(results[1], results[0]):
        assert torch.equal(got, want)


def test_weight_grad_over_many_chunks_matches_dense():
    # 2,000 rows: the most chunks (64), their partials summed in order.
    case = (2000, 2, 6, 6, 3, (3, 3), 1, 1, 0.1, True)
    spikes, weight, bias, stride, padding, grad_out = make_case(case, torch.float64)
    _, grad = ops_args(case, torch.float64)
    got = torch.ops.snnfast.event_conv2d_weight_grad(*grad).permute(3, 0, 1, 2)
    want = torch.nn.grad.conv2d_weight(spikes, weight.shape, grad_out, stride, padding)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[4], CASES[9]], ids=case_id)
def test_opcheck(case):
    conv, grad = ops_args(case, torch.float32)
    torch.library.opcheck(torch.ops.snnfast.event_conv2d.default, conv)
    torch.library.opcheck(torch.ops.snnfast.event_conv2d_weight_grad.default, grad)


def test_op_argument_errors():
    conv, grad = ops_args(CASES[0], torch.float32)
    offsets, indices, weight_t, bias, h, w, stride, padding = conv
    op, grad_op = torch.ops.snnfast.event_conv2d, torch.ops.snnfast.event_conv2d_weight_grad
    with pytest.raises(RuntimeError, match="weight_t must be \\[in_channels, kH, kW, out_channels\\]"):
        op(offsets, indices, weight_t[0], bias, h, w, stride, padding)
    with pytest.raises(RuntimeError, match="weight_t must be float32 or float64"):
        op(offsets, indices, weight_t.half(), None, h, w, stride, padding)
    with pytest.raises(RuntimeError, match="stride must be two integers >= 1"):
        op(offsets, indices, weight_t, bias, h, w, [0, 1], padding)
    with pytest.raises(RuntimeError, match="padding must be two integers >= 0"):
        op(offsets, indices, weight_t, bias, h, w, stride, [-1, 0])
    with pytest.raises(RuntimeError, match="kernel \\(3 x 3\\) is larger than the padded input \\(2 x 7\\)"):
        op(offsets, indices, weight_t, bias, 2, w, stride, padding)
    # A sample of 2 x 9 x 7 = 126 inputs: the indices of the same spikes read as 2 x 5 x 7 overflow.
    with pytest.raises(RuntimeError, match="indices must lie in \\[0, 70\\) \\(in_channels x height x width"):
        op(offsets, indices, weight_t, bias, 5, w, stride, padding)
    with pytest.raises(RuntimeError, match="offsets must be a 1-d int64"):
        op(offsets.int(), indices, weight_t, bias, h, w, stride, padding)
    with pytest.raises(RuntimeError, match="bias must be \\[4\\] \\(out_channels\\)"):
        op(offsets, indices, weight_t, torch.zeros(5), h, w, stride, padding)
    with pytest.raises(RuntimeError, match="bias must have weight_t's dtype"):
        op(offsets, indices, weight_t, bias.double(), h, w, stride, padding)
    g_offsets, g_indices, grad_y, c, gh, gw, kernel, g_stride, g_padding = grad
    with pytest.raises(RuntimeError, match="grad_y must be \\[rows, out_h, out_w, out_channels\\] = \\[3, 7, 5"):
        grad_op(g_offsets, g_indices, grad_y[:, 1:], c, gh, gw, kernel, g_stride, g_padding)
    with pytest.raises(RuntimeError, match="grad_y must be float32 or float64"):
        grad_op(g_offsets, g_indices, grad_y.half(), c, gh, gw, kernel, g_stride, g_padding)
    with pytest.raises(RuntimeError, match="the kernel must be at least 1 x 1"):
        grad_op(g_offsets, g_indices, grad_y, c, gh, gw, [0, 3], g_stride, g_padding)


def test_fake_kernels_give_the_ops_shapes():
    # The fake kernels (torch.compile, opcheck) against the real ops' output shapes.
    for case in CASES:
        conv, grad = ops_args(case, torch.float32)
        assert event_conv._fake_event_conv2d(*conv).shape == torch.ops.snnfast.event_conv2d(*conv).shape
        assert (event_conv._fake_event_conv2d_weight_grad(*grad).shape
                == torch.ops.snnfast.event_conv2d_weight_grad(*grad).shape)


def test_functional_errors():
    spikes, weight, bias, stride, padding, _ = make_case(CASES[0], torch.float32)
    with pytest.raises(TypeError, match="weight must be float32 or float64"):
        event_conv2d(spikes.half(), weight.half())
    with pytest.raises(TypeError, match="spikes_in \\(torch.float64\\) must have weight's dtype"):
        event_conv2d(spikes.double(), weight)
    with pytest.raises(ValueError, match="spikes_in must be \\[N, in_channels = 2, height, width\\]"):
        event_conv2d(spikes[:, :1], weight)
    with pytest.raises(ValueError, match="stride must be an int or two ints"):
        event_conv2d(spikes, weight, stride=(1, 1, 1))
    bad = spikes.clone()
    bad[0, 1, 2, 3] = 0.5
    with pytest.raises(ValueError, match="spikes_in must hold only 0 and 1.*check_binary=False"):
        event_conv2d(bad, weight, bias)
    # check_binary=False counts every nonzero value as a spike.
    torch.testing.assert_close(event_conv2d(bad, weight, bias, check_binary=False),
                               F.conv2d((bad != 0).float(), weight, bias), rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="snnfast.event_conv2d has kernels on \\['cpu'\\], not on meta"):
        event_conv2d(spikes.to("meta"), weight.to("meta"))


# --- EventConv2d -----------------------------------------------------------------------------

def layer_pair(events, dtype=torch.float32, seed=3, **options):
    """An EventConv2d and an nn.Conv2d from the same seed: the same initialisation."""
    kwargs = dict(in_channels=2, out_channels=6, kernel_size=(3, 5), stride=(1, 2), padding=(1, 2), dtype=dtype)
    kwargs.update(options)
    torch.manual_seed(seed)
    ours = EventConv2d(**kwargs, events=events)
    torch.manual_seed(seed)
    theirs = torch.nn.Conv2d(**kwargs)
    return ours, theirs


def test_event_conv2d_module_is_a_conv2d():
    ours, theirs = layer_pair("auto")
    assert isinstance(ours, torch.nn.Conv2d)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    for key, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value), key
    # A state_dict of an nn.Conv2d loads into it.
    fresh = EventConv2d(2, 6, (3, 5), stride=(1, 2), padding=(1, 2))
    fresh.load_state_dict(theirs.state_dict())
    assert torch.equal(fresh.weight, theirs.weight)
    assert "events='auto'" in repr(ours)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("shape", [(5, 3, 2, 9, 8), (7, 2, 9, 8), (2, 9, 8)], ids=["T,B,C,H,W", "N,C,H,W", "C,H,W"])
def test_module_paths_equal_conv2d(dtype, shape, monkeypatch):
    # auto (here on the events: the rate is below the crossover), True and False against
    # nn.Conv2d on the same input and grad_out: output and the weight, bias and input gradients.
    gen = torch.Generator().manual_seed(4)
    spikes = (torch.rand(shape, generator=gen) < 0.05).to(dtype)
    taken = []
    real = event_conv.event_conv2d
    monkeypatch.setattr(snnfast.nn.conv, "event_conv2d", lambda *a, **k: taken.append(1) or real(*a, **k))
    results = {}
    for events in ("auto", True, False):
        ours, theirs = layer_pair(events, dtype)
        x = spikes.clone().requires_grad_()
        y = ours(x)
        want = theirs(spikes.flatten(0, -4) if len(shape) > 4 else spikes)
        assert y.shape == (*shape[:-3], *want.shape[-3:])
        grad_out = torch.randn(y.shape, generator=torch.Generator().manual_seed(5), dtype=dtype)
        y.backward(grad_out)
        results[events] = [y.detach(), x.grad, ours.weight.grad, ours.bias.grad]
        x_ref = spikes.clone().requires_grad_()
        y_ref = theirs(x_ref.flatten(0, -4) if len(shape) > 4 else x_ref).reshape(y.shape)
        y_ref.backward(grad_out)
        rtol, atol = TOLERANCE[dtype]
        for got, ref in zip(results[events], [y_ref.detach(), x_ref.grad, theirs.weight.grad, theirs.bias.grad]):
            torch.testing.assert_close(got, ref, rtol=rtol, atol=atol)
    assert len(taken) == 2  # auto and True took the events, False did not
    for got, want in zip(results["auto"], results[True]):
        assert torch.equal(got, want)


def test_auto_takes_dense_above_the_crossover_and_for_images():
    ours, theirs = layer_pair("auto")
    gen = torch.Generator().manual_seed(6)
    low = (torch.rand(4, 2, 9, 8, generator=gen) < EVENT_CROSSOVER / 3).float()
    high = (torch.rand(4, 2, 9, 8, generator=gen) < min(1.0, EVENT_CROSSOVER * 3)).float()
    image = torch.rand(4, 2, 9, 8, generator=gen) * 0.05  # mean below the crossover, not spikes
    assert ours.uses_events(low) and not ours.uses_events(high)
    assert ours.uses_events(image)  # by its estimated rate; the conversion then finds it is no spikes
    for x in (low, high, image):
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    # The dense path's output has nn.Conv2d's layout; the event path's is channels-last.
    assert ours(high).is_contiguous() and ours(low).is_contiguous(memory_format=torch.channels_last)
    assert not EventConv2d(2, 6, 3, events=False).uses_events(low)


@pytest.mark.parametrize("option", [dict(dilation=2), dict(groups=2, out_channels=4), dict(padding_mode="reflect"),
                                    dict(padding="same", stride=1)], ids=lambda o: ",".join(o))
def test_unsupported_convolutions(option):
    low = (torch.rand(3, 2, 9, 8, generator=torch.Generator().manual_seed(7)) < 0.05).float()
    ours, theirs = layer_pair("auto", **option)
    assert not ours.uses_events(low)
    torch.testing.assert_close(ours(low), theirs(low), rtol=1e-5, atol=1e-5)
    name = next(iter(option))
    with pytest.raises(ValueError, match=f"events=True needs a convolution the event kernels compute; this one "
                                         f"has {name}="):
        layer_pair(True, **option)
    # Set after construction: checked at the call.
    ours.events = True
    with pytest.raises(ValueError, match=f"has {name}="):
        ours(low)


def test_module_errors():
    low = (torch.rand(3, 2, 9, 8, generator=torch.Generator().manual_seed(8)) < 0.05).float()
    for bad in ("yes", None, 1):
        with pytest.raises(ValueError, match='events must be "auto", True or False'):
            EventConv2d(2, 6, 3, events=bad)
    with pytest.raises(TypeError, match="check_binary must be True or False"):
        EventConv2d(2, 6, 3, check_binary="no")
    forced, _ = layer_pair(True)
    with pytest.raises(ValueError, match="events=True needs float32 or float64 spikes_in and weight of one dtype"):
        forced(low.double())
    with pytest.raises(ValueError, match="events=True needs float32 or float64 .*got spikes_in torch.float16"):
        layer_pair(True, dtype=torch.float16)[0](low.half())
    image = low.clone()
    image[0, 0, 0, 0] = 0.5
    with pytest.raises(ValueError, match="spikes_in must hold only 0 and 1.*check_binary=False"):
        forced(image)
    with pytest.raises(ValueError, match="spikes_in must be \\[\\*, in_channels, H, W\\]"):
        forced(low[0, 0])


def test_events_true_on_a_device_without_the_kernels():
    # The meta device has no event kernels: True names events, auto computes as nn.Conv2d.
    forced = EventConv2d(2, 6, 3, events=True, device="meta")
    x = torch.zeros(3, 2, 9, 8, device="meta")
    with pytest.raises(ValueError, match="events=True needs .* on a device with the event kernels \\(\\['cpu'\\]\\).*"
                                         "on meta.*use events=False"):
        forced(x)
    auto = EventConv2d(2, 6, 3, device="meta")
    assert not auto.uses_events(x) and auto(x).shape == (3, 6, 7, 6)


def test_module_under_time_distributed():
    # TimeDistributed passes [T x B, C, H, W]; the result is the same as on [T, B, C, H, W].
    ours, _ = layer_pair(True)
    x = (torch.rand(4, 3, 2, 9, 8, generator=torch.Generator().manual_seed(9)) < 0.05).float()
    torch.testing.assert_close(snnfast.nn.TimeDistributed(ours)(x), ours(x), rtol=0, atol=0)


def test_bench_events_conv_runs(capsys):
    # bench/bench_events.py --conv, one round of the smallest sequence: it runs and prints a row
    # per convolution (no figure is checked: timing is the bench's, not the tests').
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parent.parent / "bench" / "bench_events.py"
    spec = importlib.util.spec_from_file_location("bench_events", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--conv", "--T", "1", "--rounds", "1", "--rates", "0.03"])
    lines = capsys.readouterr().out.splitlines()
    for name in bench.CONVS:
        (row,) = [line for line in lines if line.startswith(f"| {name} | 3% |")]
        assert row.count("|") == len(bench.CONV_COLUMNS) + 4


@pytest.mark.parametrize("events", ["auto", True])
def test_module_compiles_fullgraph_without_grad(events):
    # Under torch.compile "auto" computes as nn.Conv2d (a graph cannot branch on the rate);
    # True converts in the graph (the fake kernels give the shapes, the indices' unbacked).
    torch.manual_seed(10)
    layer = EventConv2d(2, 4, 3, padding=1, events=events)
    x = (torch.rand(3, 2, 2, 8, 8, generator=torch.Generator().manual_seed(11)) < 0.05).float()
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), F.conv2d(x.flatten(0, 1), layer.weight,
                                   layer.bias, padding=1).unflatten(0, (3, 2)), rtol=1e-5, atol=1e-5)
