"""The tests of snnfast.lif that only it has, on the CPU and a real GPU: empty sequences,
chunks, gradcheck, threads, determinism, the fallback, compile and its argument errors. The
comparisons against the reference on every device are in test_ops.py (oracle.py)."""
import warnings

import pytest
import torch

import snnfast
from snnfast import _library, reference, surrogate
from snnfast.ops import _fused
from oracle import make_input, make_param, make_u0

F = (3, 4, 5)  # a conv-like neuron shape, so per-channel and per-neuron differ


def test_compiled_kernels_are_loaded():
    # Without this, every comparison below would compare the reference with itself.
    assert _library.LOADED
    assert "cpu" in _library.LIF_DEVICES


def test_empty_sequences(device):
    u0 = torch.randn(F, dtype=torch.float64, device=device)
    spikes, u_last = snnfast.lif(torch.empty((0, 2) + F, dtype=torch.float64, device=device), 0.5, u0=u0, return_state=True)
    assert spikes.shape == (0, 2) + F
    torch.testing.assert_close(u_last, u0.expand((2,) + F))
    spikes = snnfast.lif(torch.empty((5, 0) + F, device=device), 0.5)
    assert spikes.shape == (5, 0) + F


def test_empty_sequence_gradients(device):
    x = torch.empty((0, 2) + F, dtype=torch.float64, device=device, requires_grad=True)
    beta = torch.tensor(0.5, dtype=torch.float64, device=device, requires_grad=True)
    u0 = torch.randn(F, dtype=torch.float64, device=device, requires_grad=True)
    _, u_last = snnfast.lif(x, beta, u0=u0, return_state=True)
    g = torch.randn_like(u_last)
    grad_beta, grad_u0 = torch.autograd.grad((u_last * g).sum(), [beta, u0])
    assert grad_beta.item() == 0
    torch.testing.assert_close(grad_u0, g.sum(0))


def test_chunks_carry_state(device):
    # Running [0, T) in two chunks, carrying u_T, equals one run: values and gradients.
    x = make_input((10, 2) + F, torch.float64, device).requires_grad_(True)
    beta = make_param("channel", F, device, 0.3, 0.9)
    g = torch.randn(x.shape, dtype=torch.float64, device=device)
    whole = snnfast.lif(x, beta, reset="soft")
    first, u = snnfast.lif(x[:6], beta, reset="soft", return_state=True)
    second = snnfast.lif(x[6:], beta, reset="soft", u0=u)
    chunked = torch.cat([first, second])
    torch.testing.assert_close(chunked, whole)
    grads_whole = torch.autograd.grad((whole * g).sum(), [x, beta])
    grads_chunked = torch.autograd.grad((chunked * g).sum(), [x, beta])
    for a, b in zip(grads_chunked, grads_whole):
        torch.testing.assert_close(a, b)


def test_gradcheck_smooth_path(device):
    # Without reset and reading only the membrane and state, the op is smooth: the numeric
    # gradient applies.
    x = make_input((4, 2, 3), torch.float64, device).requires_grad_(True)
    beta = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64, device=device, requires_grad=True)
    alpha = torch.tensor(0.8, dtype=torch.float64, device=device, requires_grad=True)
    u0 = torch.randn(3, dtype=torch.float64, device=device, requires_grad=True)

    def smooth(x, beta, alpha, u0):
        _, u_last, membrane = snnfast.lif(x, beta, alpha=alpha, u0=u0, reset="none", return_state=True, return_membrane=True)
        return u_last, membrane

    assert torch.autograd.gradcheck(smooth, (x, beta, alpha, u0))


def test_surrogate_formulas():
    # The reference's surrogates are the spec's formulas; the kernels are checked against them above.
    x = torch.linspace(-2, 2, 101, dtype=torch.float64)
    torch.testing.assert_close(surrogate.Rectangle(1.0).derivative(x), (x.abs() < 0.5).double())
    torch.testing.assert_close(surrogate.Triangle(2.0).derivative(x), (0.5 * (1 - x.abs() / 2)).clamp(min=0))
    sg = torch.sigmoid(4 * x)
    torch.testing.assert_close(surrogate.Sigmoid().derivative(x), 4 * sg * (1 - sg))
    torch.testing.assert_close(surrogate.ATan().derivative(x), 1 / (1 + (torch.pi * x) ** 2))


def test_threads_agree():
    # Each neuron is owned by one thread, so results do not depend on the thread count, up to
    # the final parameter-gradient sums.
    x = make_input((4, 4, 4096), torch.float32, "cpu").requires_grad_(True)
    beta = make_param("layer", (4096,), "cpu", 0.3, 0.9)
    u0 = make_u0("neuron", 4, (4096,), "cpu")
    g = torch.randn(x.shape)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            spikes = snnfast.lif(x, beta, u0=u0, surrogate="sigmoid")
            results.append((spikes,) + torch.autograd.grad((spikes * g).sum(), [x, beta, u0]))
    finally:
        torch.set_num_threads(threads)
    one, two = results
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1]) and torch.equal(one[3], two[3])
    torch.testing.assert_close(one[2], two[2], rtol=1e-5, atol=1e-5)


def test_deterministic(device):
    x = make_input((6, 8) + F, torch.float32, device).requires_grad_(True)
    beta = make_param("channel", F, device, 0.3, 0.9)
    threshold = make_param("layer", F, device, 0.8, 1.2)
    g = torch.randn(x.shape, device=device)

    def once():
        spikes = snnfast.lif(x, beta, threshold=threshold, surrogate="atan")
        return torch.autograd.grad((spikes * g).sum(), [x, beta, threshold])

    for a, b in zip(once(), once()):
        assert torch.equal(a, b)


def test_torch_compile_fullgraph(device):
    torch._dynamo.reset()

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 8)
            self.beta = torch.nn.Parameter(torch.full((8,), 0.6))
            self.fc2 = torch.nn.Linear(8, 3)

        def forward(self, x):  # [T, B, 6]
            spikes = snnfast.lif(self.fc1(x), self.beta, threshold=0.5, surrogate="sigmoid")
            return self.fc2(spikes).mean(0)

    net = Net().to(device)
    compiled = torch.compile(net, fullgraph=True)
    x = torch.randn(5, 4, 6, device=device)
    out_eager, out_compiled = net(x), compiled(x)
    torch.testing.assert_close(out_compiled, out_eager)
    grads_eager = torch.autograd.grad(out_eager.sum(), list(net.parameters()))
    grads_compiled = torch.autograd.grad(out_compiled.sum(), list(net.parameters()))
    for a, b in zip(grads_compiled, grads_eager):
        torch.testing.assert_close(a, b)


def test_fallback_to_reference_warns_once(monkeypatch):
    monkeypatch.setattr(_library, "LIF_DEVICES", frozenset())
    monkeypatch.setattr(_fused, "_warned", set())
    x = make_input((4, 2, 5), torch.float64, "cpu")
    with pytest.warns(UserWarning, match="snnfast.lif: no compiled kernel"):
        out = snnfast.lif(x, 0.5)
    torch.testing.assert_close(out, reference.lif(x, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snnfast.lif(x, 0.5)


class TestBadInput:
    x = torch.randn(4, 2, 3, 5)

    def test_rank(self):
        with pytest.raises(ValueError, match=r"x must be \[T, B, \*F\]"):
            snnfast.lif(torch.randn(4, 2), 0.5)

    def test_not_floating(self):
        with pytest.raises(TypeError, match="x must be floating point"):
            snnfast.lif(torch.ones(4, 2, 3, dtype=torch.int64), 0.5)

    def test_not_a_tensor(self):
        with pytest.raises(TypeError, match="x must be a torch.Tensor"):
            snnfast.lif([[[1.0]]], 0.5)

    @pytest.mark.parametrize("name", ["beta", "alpha", "threshold"])
    def test_parameter_shape(self, name):
        args = dict(beta=0.5)
        args[name] = torch.rand(4)  # F = (3, 5): neither per-channel (3,) nor per-neuron (3, 5)
        with pytest.raises(ValueError, match=f"{name} has shape"):
            snnfast.lif(self.x, **args)

    def test_parameter_type(self):
        with pytest.raises(TypeError, match="threshold must be a float or a torch.Tensor"):
            snnfast.lif(self.x, 0.5, threshold="1")

    def test_u0_shape(self):
        with pytest.raises(ValueError, match="u0 has shape"):
            snnfast.lif(self.x, 0.5, u0=torch.zeros(4, 3, 5))

    @pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a second device")
    def test_device_mismatch(self):
        with pytest.raises(ValueError, match="beta is on"):
            snnfast.lif(self.x, torch.tensor(0.5, device="cuda"))

    def test_device_mismatch_meta(self):
        # A second device is always at hand: the meta device.
        with pytest.raises(ValueError, match="u0 is on meta but x is on cpu"):
            snnfast.lif(self.x, 0.5, u0=torch.zeros(3, 5, device="meta"))

    def test_reset_name(self):
        with pytest.raises(ValueError, match="reset must be one of"):
            snnfast.lif(self.x, 0.5, reset="hrad")

    def test_surrogate_name(self):
        with pytest.raises(ValueError, match="surrogate must be one of"):
            snnfast.lif(self.x, 0.5, surrogate="gauss")

    @pytest.mark.parametrize("make", [lambda: surrogate.Rectangle(width=0.0), lambda: surrogate.Triangle(width=-1.0),
                                      lambda: surrogate.Sigmoid(sharpness=0.0), lambda: surrogate.ATan(sharpness=-2.0)])
    def test_surrogate_parameter(self, make):
        with pytest.raises(ValueError, match="must be positive"):
            make()

    def test_op_checks_without_python(self):
        # The op itself refuses bad input too, for callers of torch.ops.snnfast.lif.
        t = torch.tensor
        with pytest.raises(RuntimeError, match="beta has shape"):
            torch.ops.snnfast.lif(self.x, torch.rand(4), t(1.0), t(1.0), None, "hard", 0.0, False, "rectangle", 1.0)
        with pytest.raises(RuntimeError, match="reset must be"):
            torch.ops.snnfast.lif(self.x, t(0.5), t(1.0), t(1.0), None, "hrad", 0.0, False, "rectangle", 1.0)
        with pytest.raises(RuntimeError, match="must be positive"):
            torch.ops.snnfast.lif(self.x, t(0.5), t(1.0), t(1.0), None, "hard", 0.0, False, "rectangle", 0.0)
        with pytest.raises(RuntimeError, match="x must be floating point"):
            torch.ops.snnfast.lif(torch.ones(2, 2, 2, dtype=torch.int32), t(0.5), t(1.0), t(1.0), None, "hard", 0.0, False, "rectangle", 1.0)
