"""The memory-saving paths (snnfast/lowmem.py, snnfast/linear_lif.py, snnfast/bitpack.py)
against the plain op, on fresh random input; and the saved-bytes counter on hand-counted cases."""
import functools
import math

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast import surrogate
from snnfast.longseq import bitpack, bptt
from snnfast.utils.memory import SavedTensorBytes
from lif_check import TOLERANCES, make_input, make_param, make_u0, run

N_FEATURES = (3, 5)  # a conv-like neuron shape, so that per-channel and per-neuron differ


# --- bits ---------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1,), (7,), (8,), (9,), (3, 31), (2, 3, 33), (4, 2, 64), (2, 0, 5),
                                   (0, 3), (2, 1, 1, 13)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.bool])
def test_bits_round_trip(device, shape, dtype):
    spikes = (torch.rand(shape) < 0.5).to(device=device, dtype=dtype)
    packed = bitpack.pack_bits(spikes, require_binary=True)
    assert packed.dtype == torch.uint8
    assert packed.shape == shape[:-1] + (math.ceil(shape[-1] / 8),)
    assert torch.equal(bitpack.unpack_bits(packed, shape[-1], dtype), spikes)
    # A slice along time unpacks on its own.
    if len(shape) >= 2 and shape[0] > 1:
        assert torch.equal(bitpack.unpack_bits(packed[1:], shape[-1], dtype), spikes[1:])


def test_bits_layout(device):
    spikes = torch.tensor([1.0, 0, 0, 1, 0, 0, 0, 0, 1, 1], device=device)
    # spike j is bit j % 8 of byte j // 8, least significant first; padding bits are 0.
    assert bitpack.pack_bits(spikes).tolist() == [0b1001, 0b11]


def test_bits_errors(device):
    with pytest.raises(ValueError, match="only 0 and 1"):
        bitpack.pack_bits(torch.tensor([0.0, 1.0, 0.5], device=device), require_binary=True)
    with pytest.raises(ValueError, match="at least one dimension"):
        bitpack.pack_bits(torch.tensor(1.0, device=device))
    with pytest.raises(ValueError, match="bytes in the last dimension"):
        bitpack.unpack_bits(torch.zeros(3, 2, dtype=torch.uint8, device=device), 17)
    with pytest.raises(TypeError, match="uint8"):
        bitpack.unpack_bits(torch.zeros(3, 2, device=device), 16)


# --- the saved-bytes counter --------------------------------------------------------------

def test_counter_counts_each_storage_once():
    a = torch.randn(10, requires_grad=True)
    with SavedTensorBytes() as saved:
        # mul saves both of its inputs: two views of a's one storage of 10 floats.
        (a[:5] * a[5:]).sum()
    assert saved.total == 10 * 4
    assert saved.excluding([a]) == 0


def test_counter_on_the_plain_op():
    T, B, N = 6, 3, 7
    x = torch.randn(T, B, N, requires_grad=True)
    with SavedTensorBytes() as saved:
        snnfast.lif(x, 0.5)
    # The float32 membrane trace, and beta, alpha and threshold as 0-d float64 host scalars;
    # not x, which only the gradient of a learnable alpha would need.
    assert saved.total == T * B * N * 4 + 3 * 8


# --- time-checkpointed BPTT ---------------------------------------------------------------

def _lif_args(device, B, reset, surrogate_name):
    return dict(
        beta=make_param("channel", N_FEATURES, device, 0.2, 0.95),
        alpha=make_param("neuron", N_FEATURES, device, 0.5, 1.5),
        threshold=make_param("layer", N_FEATURES, device, 0.6, 1.2),
        u0=make_u0("sample", B, N_FEATURES, device),
        reset=reset,
        v_reset=-0.2 if reset == "hard" else 0.0,
        surrogate=surrogate_name,
    )


def _compare_with_plain(fn, x, args, dtype=torch.float64):
    """Runs fn and snnfast.lif with the same random output gradients; asserts every output
    and gradient agree."""
    x = x.detach().to(dtype).requires_grad_(True)
    shapes = [x.shape, x.shape[1:], x.shape]
    grads_out = [torch.randn(s, dtype=torch.float64).to(x.device) for s in shapes]
    got = run(fn, x, args, grads_out)
    want = run(snnfast.lif, x, args, grads_out)
    assert got.keys() == want.keys()
    for name, w in want.items():
        g = got[name]
        assert (g is None) == (w is None), name
        if w is not None:
            assert g.dtype == w.dtype and g.shape == w.shape, name
            torch.testing.assert_close(g, w, **TOLERANCES[dtype], msg=lambda m: f"{name}: {m}")
    return got


@pytest.mark.parametrize("segment", [1, 3, 7, 11, 50])
@pytest.mark.parametrize("reset,surrogate_name,detach_reset",
                         [("hard", "rectangle", False), ("hard", "sigmoid", True), ("soft", "atan", False),
                          ("soft", "triangle", True), ("none", "sigmoid", False)])
def test_checkpointed_equals_plain_float64(device, segment, reset, surrogate_name, detach_reset):
    B = 2
    x = make_input((11, B) + N_FEATURES, torch.float64, device)
    args = dict(_lif_args(device, B, reset, surrogate_name), detach_reset=detach_reset)
    _compare_with_plain(functools.partial(snnfast.lif_checkpointed, segment=segment), x, args)


@pytest.mark.parametrize("u0_kind", ["none", "float", "neuron", "broadcast"])
def test_checkpointed_initial_states(device, u0_kind):
    B = 3
    x = make_input((9, B) + N_FEATURES, torch.float64, device)
    args = dict(beta=make_param("layer", N_FEATURES, device, 0.3, 0.9), u0=make_u0(u0_kind, B, N_FEATURES, device),
                threshold=0.9, reset="soft")
    _compare_with_plain(functools.partial(snnfast.lif_checkpointed, segment=4), x, args)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_checkpointed_lower_precision(device, dtype):
    x = make_input((10, 2) + N_FEATURES, torch.float64, device)
    _compare_with_plain(functools.partial(snnfast.lif_checkpointed, segment=3), x,
                        _lif_args(device, 2, "hard", "sigmoid"), dtype=dtype)


def test_checkpointed_only_final_state_used(device):
    # No gradient reaches the spikes: the backward pass gets None for them.
    x = make_input((10, 2) + N_FEATURES, torch.float64, device).requires_grad_(True)
    beta = make_param("neuron", N_FEATURES, device, 0.3, 0.9)
    grads = []
    for fn in (snnfast.lif, functools.partial(snnfast.lif_checkpointed, segment=3)):
        _, u_last = fn(x, beta, surrogate="sigmoid", reset="soft", return_state=True)
        grads.append(torch.autograd.grad(u_last.sum(), [x, beta]))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, **TOLERANCES[torch.float64])


def test_checkpointed_saves_states_not_the_trace():
    T, B, N, segment = 20, 3, 7, 6
    x = torch.randn(T, B, N, requires_grad=True)
    with SavedTensorBytes() as saved:
        snnfast.lif_checkpointed(x, 0.5, segment=segment)
    segments = math.ceil(T / segment)
    # x itself, the state at the start of every segment but the first, beta, alpha, threshold.
    assert saved.total == T * B * N * 4 + (segments - 1) * B * N * 4 + 3 * 8


def test_checkpointed_bad_segment():
    with pytest.raises(ValueError, match="segment"):
        snnfast.lif_checkpointed(torch.randn(4, 2, 3), 0.5, segment=0)


# --- LinearLIF ----------------------------------------------------------------------------

def _linear_lif_case(device, dtype, T=13, B=3, n_in=13, n_out=6):
    generator = torch.Generator().manual_seed(int(torch.randint(1 << 30, ())))

    def rand(*shape):
        return torch.randn(shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)

    spikes_in = (torch.rand(T, B, n_in, generator=generator) < 0.4).to(device=device, dtype=dtype)
    leaves = dict(
        spikes_in=spikes_in.requires_grad_(True),
        weight=(0.6 * rand(n_out, n_in)).requires_grad_(True),
        bias=(0.3 * rand(n_out) + 0.3).requires_grad_(True),
        beta=(0.3 + 0.6 * rand(n_out).abs().clamp(max=1)).requires_grad_(True),
        alpha=(1 + 0.2 * rand()).requires_grad_(True),
        threshold=(0.9 + 0.1 * rand(n_out)).requires_grad_(True),
        u0=(0.5 * rand(B, n_out)).requires_grad_(True),
    )
    grads_out = (rand(T, B, n_out), rand(B, n_out))
    return leaves, grads_out


def _run_layer(fn, leaves, grads_out, **options):
    spikes, u_last = fn(**leaves, **options)
    loss = (spikes * grads_out[0]).sum() + (u_last * grads_out[1]).sum()
    return [spikes, u_last] + list(torch.autograd.grad(loss, list(leaves.values())))


def _plain_layer(spikes_in, weight, bias, beta, alpha, threshold, u0, **options):
    return snnfast.lif(F.linear(spikes_in, weight, bias), beta, alpha=alpha, threshold=threshold, u0=u0,
                       return_state=True, **options)


def _fused_layer(spikes_in, weight, bias, beta, alpha, threshold, u0, **options):
    return snnfast.nn.linear.linear_lif(spikes_in, weight, bias, beta, alpha=alpha, threshold=threshold, u0=u0,
                                         return_state=True, **options)


@pytest.mark.parametrize("segment", [None, 1, 4, 13, 40])
@pytest.mark.parametrize("reset,surrogate_name", [("hard", "rectangle"), ("soft", "sigmoid"), ("none", "atan")])
def test_linear_lif_equals_linear_and_lif_float64(device, segment, reset, surrogate_name):
    leaves, grads_out = _linear_lif_case(device, torch.float64)
    options = dict(reset=reset, surrogate=surrogate_name)
    want = _run_layer(_plain_layer, leaves, grads_out, **options)
    got = _run_layer(_fused_layer, leaves, grads_out, segment=segment, **options)
    names = ["spikes", "u_last"] + ["grad_" + k for k in leaves]
    for name, g, w in zip(names, got, want):
        torch.testing.assert_close(g, w, **TOLERANCES[torch.float64], msg=lambda m: f"{name}: {m}")


def test_linear_lif_float32(device):
    leaves, grads_out = _linear_lif_case(device, torch.float32, n_in=21)
    want = _run_layer(_plain_layer, leaves, grads_out, surrogate="triangle")
    got = _run_layer(_fused_layer, leaves, grads_out, surrogate="triangle", segment=5)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOLERANCES[torch.float32])


def test_linear_lif_module_is_linear_then_lif(device):
    torch.manual_seed(3)
    layer = snnfast.nn.LinearLIF(11, 4, beta=0.7, surrogate="atan", segment=3).to(device)
    torch.manual_seed(3)
    linear = torch.nn.Linear(11, 4).to(device)  # the same initialisation
    assert torch.equal(layer.weight, linear.weight) and torch.equal(layer.bias, linear.bias)
    spikes_in = (torch.rand(8, 2, 11) < 0.5).float().to(device)
    out = layer(spikes_in)
    out.sum().backward()
    want = snnfast.lif(linear(spikes_in), 0.7, surrogate="atan")
    want.sum().backward()
    assert torch.equal(out, want)
    torch.testing.assert_close(layer.weight.grad, linear.weight.grad, **TOLERANCES[torch.float32])
    torch.testing.assert_close(layer.bias.grad, linear.bias.grad, **TOLERANCES[torch.float32])


def test_linear_lif_saves_bits_and_states():
    T, B, n_in, n_out, segment = 20, 3, 13, 5, 6
    layer = snnfast.nn.LinearLIF(n_in, n_out, beta=0.5, segment=segment)
    spikes_in = (torch.rand(T, B, n_in) < 0.5).float().requires_grad_(True)
    with SavedTensorBytes() as saved:
        layer(spikes_in)
    segments = math.ceil(T / segment)
    expected = (T * B * math.ceil(n_in / 8)          # input spikes as bits
                + (n_out * n_in + n_out) * 4         # weight and bias
                + (segments - 1) * B * n_out * 4     # states at the segments' starts
                + 3 * 8)                             # beta, alpha, threshold (float64 host scalars)
    assert saved.total == expected


def test_linear_lif_errors():
    layer = snnfast.nn.LinearLIF(4, 3, beta=0.5)
    with pytest.raises(ValueError, match="only 0 and 1"):
        layer(torch.full((2, 1, 4), 0.5))
    with pytest.raises(ValueError, match="in_features"):
        layer(torch.zeros(2, 1, 5))
    with pytest.raises(ValueError, match="segment"):
        snnfast.nn.LinearLIF(4, 3, beta=0.5, segment=-1)(torch.zeros(2, 1, 4))
    with pytest.raises(ValueError, match="beta"):
        snnfast.nn.LinearLIF(4, 3, beta=torch.ones(2))(torch.zeros(2, 1, 4))


# --- bfloat16 trace -----------------------------------------------------------------------

# Every gradient of x, u0 and per-neuron parameters within this of float32's, relative to its
# norm (the largest seen over 60 seeds of this test: 6.6e-3). A per-layer or per-channel
# parameter's gradient sums its neurons' and can lose more where they cancel.
BF16_TOLERANCE = 1e-2


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("surrogate_name", ["rectangle", "triangle", "sigmoid", "atan"])
def test_bf16_trace_within_tolerance(device, reset, surrogate_name):
    B = 4
    x = make_input((40, B) + N_FEATURES, torch.float32, device)
    args = dict(
        beta=make_param("neuron", N_FEATURES, device, 0.2, 0.95),
        alpha=make_param("neuron", N_FEATURES, device, 0.5, 1.5),
        threshold=make_param("neuron", N_FEATURES, device, 0.6, 1.2),
        u0=make_u0("sample", B, N_FEATURES, device),
        reset=reset,
        v_reset=-0.2 if reset == "hard" else 0.0,
        surrogate=surrogate_name,
    )
    args = {k: (v.float().detach().requires_grad_(True) if isinstance(v, torch.Tensor) else v)
            for k, v in args.items()}
    x32 = x.detach().float().requires_grad_(True)
    shapes = [x32.shape, x32.shape[1:], x32.shape]
    grads_out = [torch.randn(s, dtype=torch.float64).to(device) for s in shapes]
    got = run(bptt.lif_saved_bf16, x32, args, grads_out)
    want = run(snnfast.lif, x32, args, grads_out)
    for name in ("spikes", "u_last", "membrane"):
        assert torch.equal(got[name], want[name]), name  # the forward pass is exact
    for name in want:
        if name.startswith("grad_"):
            error = ((got[name] - want[name]).norm() / want[name].norm()).item()
            assert error <= BF16_TOLERANCE, (name, error)


def test_bf16_rounding_keeps_the_branches(device):
    threshold, width = 1.0, 1.0
    below = torch.tensor([1.0 - 2 ** -10, 1.0 - 2 ** -12, 0.5 - 2 ** -11, 1.5 - 2 ** -9])  # just below an edge
    h = torch.cat([below, torch.randn(2000) * 0.8 + 0.8]).view(-1, 1, 1).to(device)
    plain = h.to(torch.bfloat16).float()
    kept = bptt.to_bfloat16_keeping_branches(h, torch.tensor(threshold), surrogate.Rectangle(width)).float()
    # Plain rounding carries the values just below the threshold and the window's edges over them...
    assert ((plain >= threshold) != (h >= threshold)).any()
    assert (((plain - threshold).abs() < width / 2) != ((h - threshold).abs() < width / 2)).any()
    # ...the branch-keeping rounding never does, and stays within one bfloat16 ulp.
    assert torch.equal(kept >= threshold, h >= threshold)
    assert torch.equal((kept - threshold).abs() < width / 2, (h - threshold).abs() < width / 2)
    ulp = 2.0 ** (torch.floor(torch.log2(h.abs())) - 7)
    assert ((kept - h).abs() <= ulp).all()


def test_bf16_trace_saves_half_the_trace():
    T, B, N = 6, 3, 7
    x = torch.randn(T, B, N, requires_grad=True)
    with SavedTensorBytes() as saved:
        snnfast.lif_saved_bf16(x, 0.5)
    assert saved.total == T * B * N * 2 + 3 * 8


# --- chunked sequences --------------------------------------------------------------------

def _two_layers(device):
    torch.manual_seed(5)
    fc1 = torch.nn.Linear(6, 5).double().to(device)
    fc2 = torch.nn.Linear(5, 3).double().to(device)

    def step(x, state):
        u1, u2 = state if state is not None else (None, None)
        h, u1 = snnfast.lif(fc1(x) + 0.6, 0.8, u0=u1, surrogate="sigmoid", return_state=True)
        o, u2 = snnfast.lif(fc2(h) + 0.6, 0.7, u0=u2, surrogate="sigmoid", reset="soft", return_state=True)
        return o, (u1, u2)

    return step, list(fc1.parameters()) + list(fc2.parameters())


@pytest.mark.parametrize("chunk", [1, 4, 7, 30])
def test_run_chunked_full_bptt_equals_one_pass(device, chunk):
    step, params = _two_layers(device)
    x = torch.randn(17, 2, 6, dtype=torch.float64, device=device).requires_grad_(True)
    grad_out = torch.randn(17, 2, 3, dtype=torch.float64, device=device)
    leaves = [x] + params
    out, state = step(x, None)
    want = torch.autograd.grad((out * grad_out).sum() + state[1].sum(), leaves)
    out_c, state_c = snnfast.run_chunked(step, x, chunk=chunk)
    got = torch.autograd.grad((out_c * grad_out).sum() + state_c[1].sum(), leaves)
    assert torch.equal(out_c, out)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, **TOLERANCES[torch.float64])


def test_truncated_backward_equals_detached_chunks(device):
    step, params = _two_layers(device)
    x = torch.randn(15, 2, 6, dtype=torch.float64, device=device)
    weights = torch.randn(15, 2, 3, dtype=torch.float64, device=device)

    def loss_fn(out, t0, t1):
        return (out * weights[t0:t1]).sum()

    out, _ = snnfast.run_chunked(step, x, chunk=4, detach_state=True)
    want = torch.autograd.grad((out * weights).sum(), params)
    total, _ = snnfast.truncated_backward(step, x, chunk=4, loss_fn=loss_fn)
    for p, w in zip(params, want):
        torch.testing.assert_close(p.grad, w, **TOLERANCES[torch.float64])
    torch.testing.assert_close(total, (out * weights).sum().detach())
    # Truncation changes the gradient: the check above is not the full-BPTT one.
    full, _ = snnfast.run_chunked(step, x, chunk=4)
    full_grads = torch.autograd.grad((full * weights).sum(), params)
    assert any(not torch.allclose(f, w) for f, w in zip(full_grads, want))


# --- the combination --------------------------------------------------------------

def test_mlp_of_checkpointed_linear_lifs_equals_plain_float64(device):
    # Two LinearLIF(segment=K) layers (input and hidden spikes as bits, membranes
    # checkpointed): the gradients of the plain nn.Linear + snnfast.lif network.
    torch.manual_seed(11)
    T, B, sizes = 23, 3, (19, 10, 4)
    fused = [snnfast.nn.LinearLIF(i, o, beta=0.5, alpha=0.5, surrogate="sigmoid", segment=5).double().to(device)
             for i, o in zip(sizes, sizes[1:])]
    plain = [torch.nn.Linear(i, o).double().to(device) for i, o in zip(sizes, sizes[1:])]
    with torch.no_grad():
        for f, p in zip(fused, plain):
            p.weight.copy_(torch.randn(p.weight.shape) * 0.7)
            p.bias.add_(0.5)
            f.weight.copy_(p.weight)
            f.bias.copy_(p.bias)
    x = (torch.rand(T, B, sizes[0]) < 0.4).double().to(device)
    labels = torch.randint(sizes[-1], (B,)).to(device)
    out_fused, out_plain = x, x
    for f, p in zip(fused, plain):
        out_fused = f(out_fused)
        out_plain = snnfast.lif(p(out_plain), 0.5, alpha=0.5, surrogate="sigmoid")
    assert torch.equal(out_fused, out_plain)
    assert 0 < out_plain.mean() < 1  # the output layer fires, but not always
    F.cross_entropy(out_fused.mean(0), labels).backward()
    F.cross_entropy(out_plain.mean(0), labels).backward()
    for f, p in zip(fused, plain):
        torch.testing.assert_close(f.weight.grad, p.weight.grad, **TOLERANCES[torch.float64])
        torch.testing.assert_close(f.bias.grad, p.bias.grad, **TOLERANCES[torch.float64])
