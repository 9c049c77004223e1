"""snnfast.convert against the SpikingJelly model it replaces: same spikes, same gradients."""
import warnings

import pytest
import torch

import snnfast
from snnfast.nn import IF, LIF

# install.sh installs SpikingJelly 2.0 (--no-deps): without it this module fails, not skips.
from spikingjelly.activation_based import functional, layer, neuron, surrogate

DTYPE = torch.float64
T, B, N_IN, N = 8, 3, 6, 5

SURROGATES = {
    "sigmoid": lambda: surrogate.Sigmoid(alpha=3.0),
    "atan": lambda: surrogate.ATan(alpha=2.5),
    "piecewise_quadratic": lambda: surrogate.PiecewiseQuadratic(alpha=1.5),
    "rect": lambda: surrogate.Rect(alpha=0.8),
}

NODES = {
    "lif_decay_input": lambda sg, m: neuron.LIFNode(tau=2.0, decay_input=True, surrogate_function=sg, step_mode=m),
    "lif_no_decay_input": lambda sg, m: neuron.LIFNode(tau=3.0, decay_input=False, surrogate_function=sg, step_mode=m),
    "lif_soft": lambda sg, m: neuron.LIFNode(tau=1.5, v_reset=None, v_threshold=0.7, surrogate_function=sg,
                                             step_mode=m),
    "lif_v_reset": lambda sg, m: neuron.LIFNode(tau=2.5, v_reset=-0.3, v_threshold=0.9, detach_reset=True,
                                                surrogate_function=sg, step_mode=m),
    "if_hard": lambda sg, m: neuron.IFNode(surrogate_function=sg, step_mode=m),
    "if_soft": lambda sg, m: neuron.IFNode(v_reset=None, v_threshold=1.2, surrogate_function=sg, step_mode=m),
    "if_v_reset": lambda sg, m: neuron.IFNode(v_reset=0.2, v_threshold=0.8, surrogate_function=sg, step_mode=m),
    "plif": lambda sg, m: neuron.ParametricLIFNode(init_tau=2.5, surrogate_function=sg, step_mode=m),
    "plif_soft_no_decay": lambda sg, m: neuron.ParametricLIFNode(init_tau=4.0, decay_input=False, v_reset=None,
                                                                surrogate_function=sg, step_mode=m),
}


def _model(node_name, surrogate_name, step_mode="m"):
    torch.manual_seed(0)
    make = NODES[node_name]
    model = torch.nn.Sequential(
        layer.Linear(N_IN, N, step_mode=step_mode), make(SURROGATES[surrogate_name](), step_mode),
        layer.Linear(N, N, step_mode=step_mode), make(SURROGATES[surrogate_name](), step_mode),
    ).to(DTYPE)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(4)  # enough current for both layers to spike
    return model


def _run(model, x, step_mode):
    if step_mode == "m":
        return model(x)
    return torch.stack([model(x_t) for x_t in x])


def _parameters(model):
    """Each model's learnable tensors in the same order: Linear weights and biases, then the
    PLIF w of SpikingJelly (negated in snnfast, where beta_raw = -w)."""
    linear = [p for m in model.modules() if isinstance(m, torch.nn.Linear) for p in (m.weight, m.bias)]
    decays = [m.w for m in model.modules() if isinstance(m, neuron.ParametricLIFNode)]
    decays += [m.beta_raw for m in model.modules() if isinstance(m, LIF) and m.leak == "learnable"]
    return linear, decays


def _compare(original, converted, step_mode, calls=2):
    """Runs both models `calls` times without reset (the state carries over), then after
    functional.reset_net, checking spikes and every gradient."""
    for call in range(calls + 1):
        if call == calls:
            functional.reset_net(original)
            functional.reset_net(converted)
        x = torch.randn(T, B, N_IN, dtype=DTYPE) * 2 + 0.5
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = _run(original, x1, step_mode), _run(converted, x2, step_mode)
        assert 0 < y1.mean() < 1
        torch.testing.assert_close(y2, y1)
        grad_out = torch.randn_like(y1)
        (linear1, decays1), (linear2, decays2) = _parameters(original), _parameters(converted)
        g1 = torch.autograd.grad(y1, [x1, *linear1, *decays1], grad_out, retain_graph=True)
        g2 = torch.autograd.grad(y2, [x2, *linear2, *decays2], grad_out, retain_graph=True)
        for a, b in zip(g2[: 1 + len(linear2)], g1[: 1 + len(linear1)]):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
        for a, b in zip(g2[1 + len(linear2):], g1[1 + len(linear1):]):
            torch.testing.assert_close(a, -b, rtol=1e-9, atol=1e-10)
        assert len(decays1) == len(decays2)


@pytest.mark.parametrize("surrogate_name", list(SURROGATES))
@pytest.mark.parametrize("node_name", list(NODES))
def test_converted_model_matches_spikingjelly(node_name, surrogate_name):
    original = _model(node_name, surrogate_name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every module maps: no warning
        converted = snnfast.convert(original)
    kinds = [type(m) for m in converted.modules()]
    assert not any(issubclass(k, neuron.BaseNode) for k in kinds)
    assert kinds.count(IF if node_name.startswith("if") else LIF) == 2
    _compare(original, converted, "m")


@pytest.mark.parametrize("node_name", ["lif_v_reset", "if_soft", "plif"])
def test_single_step_nodes_convert(node_name):
    original = _model(node_name, "atan", step_mode="s")
    converted = snnfast.convert(original)
    assert all(m.step_mode == "s" for m in converted.modules() if isinstance(m, LIF))
    _compare(original, converted, "s")


def test_stateless_conversion_starts_every_call_at_rest():
    original = _model("lif_decay_input", "sigmoid")
    converted = snnfast.convert(original, stateful=False)
    x = torch.randn(T, B, N_IN, dtype=DTYPE)
    first = converted(x)
    torch.testing.assert_close(converted(x), first)
    functional.reset_net(original)
    torch.testing.assert_close(original(x), first)


def test_unmappable_modules_are_left_with_a_warning():
    model = torch.nn.Sequential(
        layer.Linear(N_IN, N, step_mode="m"),
        neuron.LIFNode(step_mode="m"),
        neuron.QIFNode(step_mode="m"),
        neuron.LIFNode(surrogate_function=surrogate.SoftSign(), step_mode="m"),
        neuron.IFNode(surrogate_function=surrogate.Sigmoid(spiking=False), step_mode="m"),
    )
    with pytest.warns(UserWarning) as record:
        converted = snnfast.convert(model)
    message = str(record[0].message)
    for name in ("2 (QIFNode", "3 (LIFNode", "SoftSign", "4 (IFNode"):
        assert name in message
    assert "1 (" not in message
    assert isinstance(converted[1], LIF)
    assert [type(m) for m in converted[2:]] == [type(m) for m in model[2:]]


def test_inplace_and_copy():
    model = _model("plif", "sigmoid")
    copy = snnfast.convert(model)
    assert copy is not model and isinstance(model[1], neuron.ParametricLIFNode)
    same = snnfast.convert(model, inplace=True)
    assert same is model and isinstance(model[1], LIF) and isinstance(model[3], LIF)
    root = snnfast.convert(neuron.IFNode(step_mode="m"), inplace=True)
    assert isinstance(root, IF)


def test_parametric_lif_keeps_w_as_minus_beta_raw():
    model = _model("plif", "rect")
    with torch.no_grad():
        model[1].w.fill_(0.7)
    converted = snnfast.convert(model)
    torch.testing.assert_close(converted[1].beta_raw, -model[1].w)
    torch.testing.assert_close(converted[1].beta, 1 - torch.sigmoid(model[1].w))
    assert converted[1].beta_raw.requires_grad
