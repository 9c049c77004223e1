"""snnfast/nn/linear.py: LinearLIF (and linear_lif) against nn.Linear + snnfast.lif, on fresh
random input, alone and as a checkpointed two-layer network."""
import math

import pytest
import torch
import torch.nn.functional as F

import snnfast
from snnfast.utils.memory import SavedTensorBytes
from oracle import TOLERANCES

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
