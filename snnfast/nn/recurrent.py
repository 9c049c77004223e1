"""RecurrentLIF: a Linear layer feeding LIF neurons with recurrent weights V (eq. 11 of the
functional-roles paper): I_t = W x_t + b + o_{t-1} @ V^T."""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import _args
from ..ops import recurrent_lif
from .neuron import LIF

__all__ = ["RecurrentLIF"]


class RecurrentLIF(LIF):
    """Linear(in_features, hidden) + LIF neurons with recurrent weights V [hidden, hidden].

    Input [T, B, in_features] (or [B, in_features] with step_mode="s"); output spikes
    [T, B, hidden]. Every LIF option applies (leak, reset, imp, stateful, ...); a learnable
    per-channel beta has one value per hidden neuron.

    V starts like a Linear(hidden, hidden) weight (uniform in +-1/sqrt(hidden)). When the
    state is carried (stateful=True or step_mode="s") the last spikes o_T are carried too, so
    the first step of the next call receives o_T @ V^T, as one long sequence would.

    detach_recurrent=True truncates BPTT through the recurrent spikes (snnfast.recurrent_lif's
    option): the gradient stops at o_{t-1} in o_{t-1} @ V^T, while V still gets its gradient.
    """

    def __init__(self, in_features: int, hidden: int, *, bias: bool = True,
                 detach_recurrent: bool = False, **lif_kwargs):
        _args.check_positive_int(hidden, "hidden", "recurrent neurons")
        _args.check_flag(detach_recurrent, "detach_recurrent")
        self.detach_recurrent = detach_recurrent
        if lif_kwargs.get("learnable_shape") == "channel":
            lif_kwargs.setdefault("channels", hidden)
        if lif_kwargs.get("imp"):
            lif_kwargs.setdefault("imp_shape", (hidden,))
        super().__init__(**lif_kwargs)
        self.linear = nn.Linear(in_features, hidden, bias=bias)
        self.V = nn.Parameter(torch.empty(hidden, hidden))
        nn.init.uniform_(self.V, -1 / math.sqrt(hidden), 1 / math.sqrt(hidden))
        self._last_spikes = None

    def reset_state(self) -> None:
        super().reset_state()
        self._last_spikes = None

    def detach_state(self) -> None:
        super().detach_state()
        if self._last_spikes is not None:
            self._last_spikes = self._last_spikes.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.linear(self._as_sequence(x))
        self._check_state_shape(current)
        if self._last_spikes is not None:
            # o_0 of this call is the last spike of the previous one.
            last = self._last_spikes.detach() if self.detach_recurrent else self._last_spikes
            first = current[:1] + last @ self.V.t().to(current.dtype)
            current = torch.cat([first, current[1:]])
        spikes = self._run(current, lambda x, beta, **options: recurrent_lif(
            x, self.V, beta, detach_recurrent=self.detach_recurrent, **options))
        if self._carries_state() and spikes.shape[0] > 0:
            self._last_spikes = spikes[-1]
        return spikes[0] if self.step_mode == "s" else spikes
