"""What the compiled ops' autograd does not do (second derivatives, forward-mode AD,
torch.func's grad transforms) fails with an error that says so and names the reference, and
the reference does it; a surrogate with its own derivative is honoured, not read by name."""
import dataclasses
import warnings

import pytest
import torch
import torch.autograd.forward_ad as forward_ad

import snnfast
from snnfast import reference, surrogate

DTYPE = torch.float64


def membrane_cubed(op):
    return lambda x: (op(x, 0.7, reset="none", return_membrane=True)[1] ** 3).sum()


def recurrent_membrane_cubed(op, V):
    return lambda x: (op(x, V, 0.7, return_membrane=True)[1] ** 3).sum()


def test_hessian_of_lif_raises_and_the_reference_gives_it():
    x = torch.rand(4, 1, 1, dtype=DTYPE)
    with pytest.raises(RuntimeError, match=r"snnfast\.lif does not support double backward.*snnfast\.reference\.lif"):
        torch.autograd.functional.hessian(membrane_cubed(snnfast.lif), x)
    hessian = torch.autograd.functional.hessian(membrane_cubed(reference.lif), x).reshape(4, 4)
    # Without reset h = C x with C[t, s] = 0.7^(t - s) (s <= t), so the Hessian of sum h^3
    # is 6 C^T diag(h) C.
    C = torch.tensor([[0.7 ** (t - s) if s <= t else 0.0 for s in range(4)] for t in range(4)], dtype=DTYPE)
    h = C @ x.flatten()
    torch.testing.assert_close(hessian, 6 * C.t() @ torch.diag(h) @ C)
    assert hessian.abs().sum() > 1


def test_double_backward_of_recurrent_lif_raises():
    x = torch.rand(4, 2, 3, dtype=DTYPE, requires_grad=True)
    V = torch.rand(3, 3, dtype=DTYPE)
    (grad,) = torch.autograd.grad(recurrent_membrane_cubed(reference.recurrent_lif, V)(x), x, create_graph=True)
    assert grad.requires_grad
    with pytest.raises(RuntimeError, match=r"snnfast\.recurrent_lif does not support double backward.*"
                                           r"snnfast\.reference\.recurrent_lif"):
        torch.autograd.grad(recurrent_membrane_cubed(snnfast.recurrent_lif, V)(x), x, create_graph=True)


def test_first_order_backward_still_works_with_create_graph_on_constants():
    # create_graph=True with nothing to differentiate twice is not refused.
    x = torch.rand(4, 2, 3, dtype=DTYPE, requires_grad=True)
    snnfast.lif(x, 0.5).sum().backward()
    assert x.grad is not None


def test_jvp_raises_and_the_reference_gives_the_tangent():
    x = torch.ones(4, 1, 1, dtype=DTYPE)
    tangent = torch.ones_like(x)

    def membrane(op):
        return lambda x: op(x, 0.5, reset="none", return_membrane=True)[1]

    with pytest.raises(RuntimeError, match=r"snnfast\.lif does not support forward-mode AD.*snnfast\.reference\.lif"):
        torch.func.jvp(membrane(snnfast.lif), (x,), (tangent,))
    _, out = torch.func.jvp(membrane(reference.lif), (x,), (tangent,))
    assert out.flatten().tolist() == [1.0, 1.5, 1.75, 1.875]


def test_forward_ad_dual_tensors_raise():
    x = torch.ones(4, 1, 1, dtype=DTYPE)
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(x, torch.ones_like(x))
        with pytest.raises(RuntimeError, match="forward-mode AD"):
            snnfast.lif(dual, 0.5)
        with pytest.raises(RuntimeError, match="forward-mode AD"):
            snnfast.recurrent_lif(dual, torch.zeros(1, 1, dtype=DTYPE), 0.5)
        # Another tensor being dual does not concern the op.
        forward_ad.make_dual(torch.zeros(2), torch.ones(2))
        snnfast.lif(x, 0.5)


@pytest.mark.parametrize("transform", ["grad", "jacrev"])
def test_func_grad_transforms_raise_and_the_reference_matches_backward(transform):
    x = torch.rand(5, 2, 3, dtype=DTYPE) * 2
    loss = lambda op: (lambda x: (op(x, 0.6) * torch.arange(3, dtype=DTYPE)).sum())  # noqa: E731
    fn = getattr(torch.func, transform)
    with pytest.raises(RuntimeError, match=r"snnfast\.lif does not support torch\.func's grad transforms"):
        fn(loss(snnfast.lif))(x)
    with pytest.raises(RuntimeError, match=r"snnfast\.recurrent_lif does not support"):
        fn(lambda x: snnfast.recurrent_lif(x, torch.zeros(3, 3, dtype=DTYPE), 0.6).sum())(x)
    got = fn(loss(reference.lif))(x)
    leaf = x.clone().requires_grad_()
    loss(snnfast.lif)(leaf).backward()
    torch.testing.assert_close(got, leaf.grad)


def test_vmap_still_runs_the_kernel():
    x = torch.rand(3, 4, 2, 5, dtype=DTYPE) * 2
    out = torch.vmap(lambda x: snnfast.lif(x, 0.5))(x)
    torch.testing.assert_close(out, torch.stack([reference.lif(xi, 0.5) for xi in x]))


@pytest.mark.parametrize("op", ["lif_checkpointed", "lif_saved_bf16"])
def test_memory_paths_refuse_forward_ad(op):
    fn = getattr(snnfast, op)
    extra = {"segment": 2} if op == "lif_checkpointed" else {}
    x = torch.ones(4, 1, 1, dtype=DTYPE)
    with pytest.raises(RuntimeError, match=rf"snnfast\.{op} does not support forward-mode AD"):
        torch.func.jvp(lambda x: fn(x, 0.5, **extra), (x,), (torch.ones_like(x),))


# ---------------------------------------------------------------- custom surrogate derivatives

@dataclasses.dataclass(frozen=True)
class DoubledRectangle(surrogate.Rectangle):
    def derivative(self, x):
        return 2 * super().derivative(x)


def gradient_sum(op, s, recurrent=False):
    torch.manual_seed(0)
    x = (torch.rand(6, 3, 4, dtype=DTYPE) * 1.5).requires_grad_()
    if recurrent:
        op(x, torch.full((4, 4), 0.1, dtype=DTYPE), 0.8, surrogate=s).sum().backward()
    else:
        op(x, 0.8, surrogate=s).sum().backward()
    return x.grad.sum().item()


@pytest.mark.parametrize("recurrent", [False, True])
def test_surrogate_subclass_with_its_own_derivative_is_honoured(recurrent, monkeypatch):
    monkeypatch.setattr(snnfast.ops._fused, "_warned", set())
    lif = snnfast.recurrent_lif if recurrent else snnfast.lif
    ref = reference.recurrent_lif if recurrent else reference.lif
    with pytest.warns(UserWarning, match="DoubledRectangle defines its own derivative"):
        got = gradient_sum(lif, DoubledRectangle(), recurrent)
    want = gradient_sum(ref, DoubledRectangle(), recurrent)
    plain = gradient_sum(ref, surrogate.Rectangle(), recurrent)
    assert got == pytest.approx(want, rel=1e-12)
    assert abs(want - plain) > 1e-3  # the doubled derivative does change the gradient
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning, not one per call
        gradient_sum(lif, DoubledRectangle(), recurrent)


def test_plain_subclass_keeps_the_kernel():
    @dataclasses.dataclass(frozen=True)
    class Named(surrogate.Sigmoid):
        pass

    assert surrogate.in_kernel(Named(3.0)) and surrogate.in_kernel(surrogate.ATan())
    assert not surrogate.in_kernel(DoubledRectangle())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradient_sum(snnfast.lif, Named(3.0)) == pytest.approx(gradient_sum(reference.lif, Named(3.0)), rel=1e-12)


def test_memory_paths_reject_a_custom_derivative():
    x = torch.rand(4, 2, 3)
    with pytest.raises(ValueError, match=r"snnfast\.lif_checkpointed: the surrogate DoubledRectangle.*use snnfast\.lif"):
        snnfast.lif_checkpointed(x, 0.5, segment=2, surrogate=DoubledRectangle())
    with pytest.raises(ValueError, match=r"snnfast\.lif_saved_bf16: the surrogate DoubledRectangle"):
        snnfast.lif_saved_bf16(x, 0.5, surrogate=DoubledRectangle())
    with pytest.raises(ValueError, match=r"LinearLIF: the surrogate DoubledRectangle"):
        snnfast.nn.LinearLIF(3, 2, beta=0.5, surrogate=DoubledRectangle())(torch.ones(4, 2, 3))
