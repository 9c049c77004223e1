"""The losses against their formulas, written here with explicit loops and log-sum-exp."""
import math

import pytest
import torch

from snnfast.losses import LTS, SDT, TET, TETS

T, B, C = 5, 4, 6


def _outputs():
    torch.manual_seed(0)
    return torch.randn(T, B, C, dtype=torch.float64) * 2, torch.randint(0, C, (B,))


def _cross_entropy(logits, target_probs):
    """-sum_c q_c log softmax(z)_c for one sample."""
    log_norm = math.log(sum(math.exp(z) for z in logits.tolist()))
    return -sum(q * (z - log_norm) for z, q in zip(logits.tolist(), target_probs))


def _one_hot(label, epsilon=0.0):
    label = int(label)
    return [(1 - epsilon) * (c == label) + epsilon / C for c in range(C)]


def test_sdt_is_cross_entropy_of_the_time_mean():
    y, target = _outputs()
    mean = y.mean(0)
    expected = sum(_cross_entropy(mean[b], _one_hot(target[b])) for b in range(B)) / B
    assert math.isclose(SDT()(y, target).item(), expected, rel_tol=1e-12)


def test_lts_is_cross_entropy_of_the_last_step():
    y, target = _outputs()
    expected = sum(_cross_entropy(y[-1, b], _one_hot(target[b])) for b in range(B)) / B
    assert math.isclose(LTS()(y, target).item(), expected, rel_tol=1e-12)


@pytest.mark.parametrize("lamb,phi", [(0.0, 1.0), (0.05, 1.0), (0.3, 0.2)])
def test_tet_is_mean_over_steps_with_mse_regulariser(lamb, phi):
    y, target = _outputs()
    per_step = [sum(_cross_entropy(y[t, b], _one_hot(target[b])) for b in range(B)) / B for t in range(T)]
    mse = [sum((v - phi) ** 2 for v in y[t].flatten().tolist()) / (B * C) for t in range(T)]
    expected = (1 - lamb) * sum(per_step) / T + lamb * sum(mse) / T
    assert math.isclose(TET(lamb, phi)(y, target).item(), expected, rel_tol=1e-12)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.4])
def test_tets_is_tet_on_smoothed_labels(epsilon):
    y, target = _outputs()
    expected = sum(
        _cross_entropy(y[t, b], _one_hot(target[b], epsilon)) for t in range(T) for b in range(B)
    ) / (T * B)
    assert math.isclose(TETS(epsilon)(y, target).item(), expected, rel_tol=1e-12)


def test_tets_smoothing_matches_the_slides_example():
    # (1 - 0.1) [1, 0, 0] + 0.1 / 3 = [0.9333, 0.0333, 0.0333]
    smoothed = [(1 - 0.1) * (c == 0) + 0.1 / 3 for c in range(3)]
    assert [round(v, 4) for v in smoothed] == [0.9333, 0.0333, 0.0333]
    y = torch.tensor([[[0.8, 0.1, 0.1]]], dtype=torch.float64)
    expected = _cross_entropy(y[0, 0], smoothed)
    assert math.isclose(TETS(0.1)(y, torch.tensor([0])).item(), expected, rel_tol=1e-12)


def test_probability_targets_and_gradients():
    y, target = _outputs()
    probs = torch.nn.functional.one_hot(target, C).to(y.dtype)
    for loss in (SDT(), TET(0.1), TETS(0.1), LTS()):
        torch.testing.assert_close(loss(y, probs), loss(y, target))
        leaf = y.clone().requires_grad_()
        loss(leaf, target).backward()
        assert leaf.grad.shape == y.shape and torch.isfinite(leaf.grad).all()
    # LTS only looks at the last step; SDT and TET at every step.
    leaf = y.clone().requires_grad_()
    LTS()(leaf, target).backward()
    assert leaf.grad[:-1].abs().sum() == 0 and leaf.grad[-1].abs().sum() > 0


@pytest.mark.parametrize("loss", [SDT(), TET(), TETS(), LTS()])
def test_bad_outputs_shape(loss):
    with pytest.raises(ValueError, match=r"\[T, B, C\]"):
        loss(torch.randn(B, C), torch.zeros(B, dtype=torch.long))


def test_bad_arguments():
    with pytest.raises(ValueError, match="lamb"):
        TET(lamb=1.5)
    with pytest.raises(ValueError, match="epsilon"):
        TETS(epsilon=-0.1)
