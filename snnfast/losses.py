"""Classification losses over time-major outputs y [T, B, C] (logits or spike counts per step),
as compared in the IMP paper (Shen et al.): SDT, TET, TET-S and LTS.

Targets are what F.cross_entropy takes: class indices [B] or class probabilities [B, C].
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SDT", "TET", "TETS", "LTS"]


def _check_outputs(y) -> None:
    if not isinstance(y, torch.Tensor) or y.dim() != 3:
        shape = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"outputs must be [T, B, C], got {shape}")
    if y.shape[0] == 0:
        raise ValueError("outputs must have at least one time step (T = 0)")


def _per_step_cross_entropy(y: torch.Tensor, target: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """(1/T) sum_t CE(y_t, target), with the batch folded into one call."""
    T = y.shape[0]
    return F.cross_entropy(
        y.flatten(0, 1), target.repeat((T,) + (1,) * (target.dim() - 1)), label_smoothing=label_smoothing
    )


class SDT(nn.Module):
    """Standard direct training: L = CE((1/T) sum_t y_t, target)."""

    def forward(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(y)
        return F.cross_entropy(y.mean(0), target)


class TET(nn.Module):
    """Temporal efficient training (Deng et al.):
    L = (1 - lamb) (1/T) sum_t CE(y_t, target) + lamb (1/T) sum_t MSE(y_t, phi),
    phi the target firing level (a constant). lamb = 0 drops the regulariser."""

    def __init__(self, lamb: float = 0.0, phi: float = 1.0):
        super().__init__()
        if not 0.0 <= lamb <= 1.0:
            raise ValueError(f"lamb must be in [0, 1], got {lamb}")
        self.lamb = float(lamb)
        self.phi = float(phi)

    def forward(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(y)
        loss = _per_step_cross_entropy(y, target, 0.0)
        if self.lamb == 0.0:
            return loss
        regulariser = F.mse_loss(y, torch.full_like(y, self.phi))
        return (1 - self.lamb) * loss + self.lamb * regulariser

    def extra_repr(self) -> str:
        return f"lamb={self.lamb}, phi={self.phi}"


class TETS(nn.Module):
    """TET-S (the IMP paper): TET without the regulariser, on labels smoothed as
    (1 - epsilon) y_gt + epsilon / K: L = (1/T) sum_t CE(y_t, smoothed target)."""

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
        self.epsilon = float(epsilon)

    def forward(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(y)
        return _per_step_cross_entropy(y, target, self.epsilon)

    def extra_repr(self) -> str:
        return f"epsilon={self.epsilon}"


class LTS(nn.Module):
    """Last time step (the IMP paper): L = CE(y_T, target), for static inputs."""

    def forward(self, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check_outputs(y)
        return F.cross_entropy(y[-1], target)
