"""LeakyReadout: the non-spiking output layer of the delayed-XOR network (DH-SNN's readout
integrator), run by the fused op with reset="none" so that it never fires and never resets."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import _args
from ..ops import lif as lif_op

__all__ = ["LeakyReadout"]


class LeakyReadout(nn.Module):
    """Leaky integrators over [T, B, features] with one learnable decay per neuron.

    u_t = beta * u_{t-1} + (1 - beta) * x_t, u_0 = 0, beta = sigmoid(beta_raw); returns the
    membrane trace [T, B, features] (the logits of every step). The input is scaled by
    (1 - beta) as in DH-SNN's readout_integrator, so that the trace stays on the scale of its
    input whatever the decay.

    Args:
        features: the number of readout neurons (classes).
        beta_init: the initial decay, in (0, 1), the same for every neuron.
    """

    def __init__(self, features: int, *, beta_init: float = 0.5):
        super().__init__()
        _args.check_positive_int(features, "features", "readout neurons")
        if not 0.0 < beta_init < 1.0:
            raise ValueError(f"beta_init must lie in (0, 1), got {beta_init!r}")
        self.features = int(features)
        self.beta_raw = nn.Parameter(torch.full((self.features,), math.log(beta_init) - math.log1p(-beta_init)))

    @property
    def beta(self) -> torch.Tensor:
        return torch.sigmoid(self.beta_raw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.features:
            raise ValueError(f"LeakyReadout expects input [T, B, {self.features}], got shape {tuple(x.shape)}")
        beta = self.beta
        # No reset, so the threshold only decides the spikes, which are discarded.
        _, membrane = lif_op(x, beta, alpha=1 - beta, reset="none", return_membrane=True)
        return membrane

    def extra_repr(self) -> str:
        return f"features={self.features}"
