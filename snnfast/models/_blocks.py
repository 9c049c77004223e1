"""Pieces shared by the networks: the neuron switch and conv + BatchNorm over sequences."""
from __future__ import annotations

from typing import Callable

from torch import nn

from ..nn import LIF, TimeDistributed


def neuron_factory(neuron, neuron_kwargs: dict, default=LIF,
                   default_kwargs: dict | None = None) -> Callable[[], nn.Module]:
    """A zero-argument callable making one neuron layer.

    With neuron=None, the paper's default neuron with its settings (default_kwargs), updated by
    the caller's keyword arguments; a leak of "none" or "complete" drops the default beta.
    With a neuron given (a class or any callable), only the caller's keyword arguments are used.
    """
    if neuron is not None:
        return lambda: neuron(**neuron_kwargs)
    kwargs = with_defaults(neuron_kwargs, default_kwargs)
    return lambda: default(**kwargs)


def with_defaults(neuron_kwargs: dict, default_kwargs: dict | None) -> dict:
    """The default neuron settings updated by the caller's. A leak of "none" or "complete"
    fixes beta (and alpha = 1), so it drops the default beta and decay_input; a leak that is
    not learnable drops the default learnable_shape and channels."""
    kwargs = {**(default_kwargs or {}), **neuron_kwargs}
    if neuron_kwargs.get("leak") in ("none", "complete"):
        for name in ("beta", "decay_input"):
            if name not in neuron_kwargs:
                kwargs.pop(name, None)
    if kwargs.get("leak", "normal") != "learnable":
        for name in ("learnable_shape", "channels"):
            if name not in neuron_kwargs:
                kwargs.pop(name, None)
    return kwargs


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0) -> nn.Module:
    """Conv2d (no bias: BatchNorm follows) + BatchNorm2d over [T, B, C, H, W]."""
    return TimeDistributed(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def check_input(x, channels: int, name: str) -> None:
    if x.dim() != 5 or x.shape[2] != channels:
        raise ValueError(f"{name} expects input [T, B, {channels}, H, W], got shape {tuple(x.shape)}")
