"""snnfast.nn layers against the reference neuron (snnfast.reference.lif) with the same
parameters: forward, and the gradients of the input and of every learnable parameter."""
import math

import pytest
import torch

import snnfast
from snnfast import reference, surrogate
from snnfast.nn import DALIF, IF, LIF, RecurrentLIF, TimeDistributed, TimeDropout

DTYPE = torch.float64
T, B = 7, 3


def _input(*shape, scale=1.5):
    return (torch.randn(*shape, dtype=DTYPE) * scale + 0.5).requires_grad_()


def _grads(out, grad_out, tensors):
    return torch.autograd.grad(out, tensors, grad_out, allow_unused=True)


def _assert_close(actual, expected):
    for a, e in zip(actual, expected):
        assert (a is None) == (e is None)
        if a is not None:
            torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-10)


def _leaf(t):
    return t.detach().clone().requires_grad_()


# ---------------------------------------------------------------------------------------
# LIF: each option against the reference with the parameters it should choose


LIF_CASES = [
    (dict(), dict(beta=0.5)),
    (dict(beta=0.3, reset="soft"), dict(beta=0.3, reset="soft")),
    (dict(beta=0.8, reset="none"), dict(beta=0.8, reset="none")),
    (dict(leak="none"), dict(beta=1.0)),
    (dict(leak="complete"), dict(beta=0.0)),
    (dict(beta=0.6, decay_input=True), dict(beta=0.6, alpha=0.4)),
    (dict(beta=0.7, threshold=0.8, v_reset=-0.2, detach_reset=True, surrogate="atan"),
     dict(beta=0.7, threshold=0.8, v_reset=-0.2, detach_reset=True, surrogate="atan")),
    (dict(beta=0.4, surrogate=surrogate.Triangle(0.5)), dict(beta=0.4, surrogate=surrogate.Triangle(0.5))),
]


@pytest.mark.parametrize("options,expected", LIF_CASES)
def test_lif_equals_reference(options, expected):
    x = _input(T, B, 4, 5)
    layer = LIF(**options)
    grad_out = torch.randn(T, B, 4, 5, dtype=DTYPE)
    out = layer(x)
    ref = reference.lif(x, **expected)
    torch.testing.assert_close(out, ref)
    _assert_close(_grads(out, grad_out, [x]), _grads(ref, grad_out, [x]))


@pytest.mark.parametrize("kind", ["channel", "neuron"])
def test_lif_fixed_tensor_beta(kind):
    x = _input(T, B, 4, 5)
    beta = torch.rand(4, dtype=DTYPE) if kind == "channel" else torch.rand(4, 5, dtype=DTYPE)
    out = LIF(beta)(x)
    torch.testing.assert_close(out, reference.lif(x, beta))


@pytest.mark.parametrize("shape", ["layer", "channel"])
@pytest.mark.parametrize("decay_input", [False, True])
def test_learnable_beta_equals_reference(shape, decay_input):
    x = _input(T, B, 4, 5)
    layer = LIF(0.3, leak="learnable", learnable_shape=shape, decay_input=decay_input).to(DTYPE)
    layer(x)  # materialises a lazy per-channel beta
    with torch.no_grad():
        layer.beta_raw.add_(torch.randn_like(layer.beta_raw) * 0.5)
    raw = _leaf(layer.beta_raw)
    grad_out = torch.randn(T, B, 4, 5, dtype=DTYPE)
    out = layer(x)
    beta = torch.sigmoid(raw)
    ref = reference.lif(x, beta, alpha=(1 - beta) if decay_input else 1.0)
    torch.testing.assert_close(out, ref)
    _assert_close(_grads(out, grad_out, [x, layer.beta_raw]), _grads(ref, grad_out, [x, raw]))


def test_learnable_beta_initial_value_and_shape():
    layer = LIF(0.3, leak="learnable", learnable_shape="channel", channels=6)
    assert layer.beta_raw.shape == (6,)
    torch.testing.assert_close(layer.beta, torch.full((6,), 0.3))
    lazy = LIF(0.3, leak="learnable", learnable_shape="channel")
    lazy(torch.randn(2, 2, 5, 3, 3))
    assert lazy.beta_raw.shape == (5,)
    torch.testing.assert_close(lazy.beta, torch.full((5,), 0.3))


def test_lazy_parameters_with_an_optimizer_built_first():
    layer = LIF(0.5, leak="learnable", learnable_shape="channel", imp=True)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.1)
    layer(torch.rand(T, B, 4) * 3).sum().backward()
    before = [p.detach().clone() for p in layer.parameters()]
    optimizer.step()
    assert [p.shape for p in layer.parameters()] == [(4,), (4,)]
    assert all(not torch.equal(a, b) for a, b in zip(before, layer.parameters()))


def test_learnable_beta_stays_in_unit_interval():
    layer = LIF(0.5, leak="learnable", learnable_shape="channel", channels=4)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e4)
    for sign in (1.0, -1.0, 1.0):
        for _ in range(3):
            optimizer.zero_grad()
            x = torch.rand(T, B, 4) * 3
            (sign * layer(x).sum() + sign * layer.beta.sum()).backward()
            optimizer.step()
            assert torch.all(layer.beta >= 0) and torch.all(layer.beta <= 1)
    assert not torch.allclose(layer.beta, torch.full((4,), 0.5))


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("reset", ["soft", "hard"])
def test_imp_equals_reference_with_learnable_u0(lazy, reset):
    x = _input(T, B, 4, 5)
    layer = IF(reset=reset, imp=True, imp_shape=None if lazy else (4, 5), imp_init=0.25).to(DTYPE)
    layer(x)
    assert layer.u0.shape == (4, 5)
    torch.testing.assert_close(layer.u0, torch.full((4, 5), 0.25, dtype=layer.u0.dtype))
    with torch.no_grad():
        layer.u0.copy_(torch.rand(4, 5))
    u0 = _leaf(layer.u0)
    grad_out = torch.randn(T, B, 4, 5, dtype=DTYPE)
    out = layer(x)
    ref = reference.lif(x, 1.0, reset=reset, u0=u0)
    torch.testing.assert_close(out, ref)
    _assert_close(_grads(out, grad_out, [x, layer.u0]), _grads(ref, grad_out, [x, u0]))


def test_dalif_equals_reference_with_tanh_decays():
    layer = DALIF().to(DTYPE)
    torch.testing.assert_close(layer.alpha, torch.tanh(torch.tensor(1.0, dtype=DTYPE)))
    torch.testing.assert_close(layer.beta, torch.tanh(torch.tensor(1.0, dtype=DTYPE)))
    with torch.no_grad():
        layer.alpha_raw.fill_(0.8)
        layer.beta_raw.fill_(-0.3)
    alpha_raw, beta_raw = _leaf(layer.alpha_raw), _leaf(layer.beta_raw)
    x = _input(T, B, 6)
    grad_out = torch.randn(T, B, 6, dtype=DTYPE)
    out = layer(x)
    ref = reference.lif(x, torch.tanh(beta_raw), alpha=torch.tanh(alpha_raw), threshold=1.0, reset="hard",
                        v_reset=0.0, surrogate=surrogate.Rectangle(1.0))
    torch.testing.assert_close(out, ref)
    _assert_close(_grads(out, grad_out, [x, layer.alpha_raw, layer.beta_raw]),
                  _grads(ref, grad_out, [x, alpha_raw, beta_raw]))


# ---------------------------------------------------------------------------------------
# State: chunks and single steps against one call over the whole sequence


def _layers():
    return {
        "lif": lambda: LIF(0.6, reset="soft"),
        "learnable_imp": lambda: LIF(0.4, leak="learnable", learnable_shape="channel", channels=5, imp=True,
                                     imp_shape=(5,), imp_init=0.3),
        "dalif": lambda: DALIF(),
        "recurrent": lambda: RecurrentLIF(5, 5, beta=0.7, imp=True),
    }


def _same_parameters(a, b):
    b.load_state_dict(a.state_dict())


@pytest.mark.parametrize("name", list(_layers()))
def test_stateful_chunks_equal_one_call(name):
    make = _layers()[name]
    whole, chunked = make().to(DTYPE), make().to(DTYPE)
    chunked.stateful = True
    with torch.no_grad():
        for p in whole.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    _same_parameters(whole, chunked)
    x = _input(9, B, 5)
    grad_out = torch.randn(9, B, 5, dtype=DTYPE)
    out = whole(x)
    pieces = [chunked(part) for part in torch.split(x, [4, 1, 4])]
    chunked_out = torch.cat(pieces)
    torch.testing.assert_close(chunked_out, out)
    _assert_close(_grads(chunked_out, grad_out, [x, *chunked.parameters()]),
                  _grads(out, grad_out, [x, *whole.parameters()]))
    chunked.reset_state()
    torch.testing.assert_close(chunked(x), out)


@pytest.mark.parametrize("name", list(_layers()))
def test_single_step_loop_equals_multi_step(name):
    make = _layers()[name]
    multi, single = make().to(DTYPE), make().to(DTYPE)
    single.step_mode = "s"
    with torch.no_grad():
        for p in multi.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    _same_parameters(multi, single)
    x = _input(T, B, 5)
    grad_out = torch.randn(T, B, 5, dtype=DTYPE)
    out = multi(x)
    stepped = torch.stack([single(x_t) for x_t in x])
    torch.testing.assert_close(stepped, out)
    _assert_close(_grads(stepped, grad_out, [x, *single.parameters()]),
                  _grads(out, grad_out, [x, *multi.parameters()]))


def test_stateless_calls_are_independent_and_state_is_checked():
    x = _input(T, B, 4)
    layer = LIF(0.9)
    torch.testing.assert_close(layer(x), layer(x))
    assert layer.state is None
    stateful = LIF(0.9, stateful=True)
    stateful(x)
    assert stateful.state.shape == (B, 4)
    with pytest.raises(ValueError, match="reset_state"):
        stateful(_input(T, B + 1, 4))
    stateful.detach_state()
    assert not stateful.state.requires_grad
    stateful.reset()  # the name SpikingJelly's functional.reset_net calls
    assert stateful.state is None


# ---------------------------------------------------------------------------------------
# RecurrentLIF: against a loop of reference steps with I_t = W x_t + b + o_{t-1} V^T


def _recurrent_oracle(x, weight, bias, V, **options):
    current = x @ weight.t() + bias
    spikes, u, o = [], options.pop("u0", None), torch.zeros(x.shape[1], V.shape[0], dtype=x.dtype)
    for current_t in current:
        o, u = reference.lif((current_t + o @ V.t())[None], u0=u, return_state=True, **options)
        o = o[0]
        spikes.append(o)
    return torch.stack(spikes)


@pytest.mark.parametrize("options", [dict(beta=0.8), dict(beta=0.5, reset="soft", threshold=0.7),
                                     dict(leak="learnable", beta=0.6, decay_input=True)])
def test_recurrent_lif_equals_reference_loop(options):
    layer = RecurrentLIF(6, 5, **options).to(DTYPE)
    with torch.no_grad():
        layer.V.mul_(4)  # strong recurrence, so that it changes the spikes
    x = _input(T, B, 6)
    grad_out = torch.randn(T, B, 5, dtype=DTYPE)
    out = layer(x)
    weight, bias, V = _leaf(layer.linear.weight), _leaf(layer.linear.bias), _leaf(layer.V)
    params = [x, layer.linear.weight, layer.linear.bias, layer.V]
    oracle_params = [x, weight, bias, V]
    if "leak" in options:
        raw = _leaf(layer.beta_raw)
        beta = torch.sigmoid(raw)
        ref = _recurrent_oracle(x, weight, bias, V, beta=beta, alpha=1 - beta)
        params.append(layer.beta_raw)
        oracle_params.append(raw)
    else:
        ref = _recurrent_oracle(x, weight, bias, V, **options)
    torch.testing.assert_close(out, ref)
    _assert_close(_grads(out, grad_out, params), _grads(ref, grad_out, oracle_params))


# ---------------------------------------------------------------------------------------
# Argument errors name the argument


@pytest.mark.parametrize("make,match", [
    (lambda: LIF(leak="slow"), "leak"),
    (lambda: LIF(0.5, leak="none"), "beta"),
    (lambda: LIF(1.0, leak="learnable"), "learnable beta"),
    (lambda: LIF(0.5, learnable_shape="neuron", leak="learnable"), "learnable_shape"),
    (lambda: LIF(0.5, channels=3), "channels"),
    (lambda: LIF(reset="zero"), "reset"),
    (lambda: LIF(step_mode="x"), "step_mode"),
    (lambda: LIF(surrogate="box"), "surrogate"),
    (lambda: LIF(imp_shape=(3,)), "imp_shape"),
    (lambda: IF(beta=0.5), "beta"),
])
def test_bad_arguments(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


def test_single_step_rejects_a_batch_without_neurons():
    with pytest.raises(ValueError, match=r"\[B, \*F\]"):
        LIF(step_mode="s")(torch.randn(4))


# ---------------------------------------------------------------------------------------
# Containers


def test_time_distributed_applies_layers_to_every_step():
    conv, pool = torch.nn.Conv2d(3, 4, 3).to(DTYPE), torch.nn.AvgPool2d(2)
    x = _input(T, B, 3, 8, 8)
    out = TimeDistributed(conv, pool)(x)
    expected = torch.stack([pool(conv(x_t)) for x_t in x])
    torch.testing.assert_close(out, expected)


def test_time_dropout_keeps_one_mask_across_time():
    torch.manual_seed(0)
    dropout = TimeDropout(0.5)
    x = torch.rand(T, B, 50) + 0.5
    out = dropout(x)
    kept = out != 0
    assert torch.equal(kept, kept[:1].expand_as(kept))
    assert 0 < kept[0].float().mean() < 1
    torch.testing.assert_close(out[kept], x[kept] * 2)
    dropout.eval()
    assert torch.equal(dropout(x), x)
    with pytest.raises(ValueError, match="p"):
        TimeDropout(1.0)


def test_exports():
    for name in ("nn", "losses", "models", "convert"):
        assert hasattr(snnfast, name)
    assert math.isclose(LIF().beta, 0.5)
