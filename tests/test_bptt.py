"""snnfast/longseq/bptt.py: lif_checkpointed, lif_saved_bf16, run_chunked and
truncated_backward against the plain op, on fresh random input."""
import functools
import math

import pytest
import torch

import snnfast
from snnfast import surrogate
from snnfast.longseq import bptt
from snnfast.utils.memory import SavedTensorBytes
from oracle import TOLERANCES, make_input, make_param, make_u0, run_lif as run

N_FEATURES = (3, 5)  # a conv-like neuron shape, so that per-channel and per-neuron differ


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
