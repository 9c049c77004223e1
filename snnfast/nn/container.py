"""Stateless layers over time-major sequences [T, B, ...]."""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["TimeDistributed", "TimeDropout"]


def _check_sequence(x, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() < 2:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} expects a sequence [T, B, ...], got {shape}")


class TimeDistributed(nn.Sequential):
    """Applies stateless layers (Conv2d, BatchNorm2d, Linear, pooling, ...) to every time step
    of [T, B, ...] at once, by folding T into the batch: SpikingJelly's SeqToANNContainer.

    Takes one or more modules, run in order like nn.Sequential. BatchNorm inside it
    normalises over time and batch together.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sequence(x, "TimeDistributed")
        y = super().forward(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])


class TimeDropout(nn.Module):
    """Dropout with one mask per sequence, shared by every time step of [T, B, ...]: a neuron
    dropped is silent for the whole sequence (as SpikingJelly's multi-step layer.Dropout)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"p must be in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_sequence(x, "TimeDropout")
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty_like(x[:1]).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
