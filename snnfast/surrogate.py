"""Surrogate derivatives of the Heaviside spike, as neuron-spec.md defines them.

Each surrogate names itself (``name``), carries its one parameter (``param``: the width ``a``
of Rectangle and Triangle, the sharpness ``k`` of Sigmoid and ATan) and gives its derivative
in PyTorch for the reference. The kernels compute the same functions in C++.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["Surrogate", "Rectangle", "Triangle", "Sigmoid", "ATan", "get", "in_kernel"]


@dataclass(frozen=True)
class Surrogate:
    name = ""

    @property
    def param(self) -> float:
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """s(x) at x = h - threshold."""
        raise NotImplementedError

    def __post_init__(self):
        if not self.param > 0:
            field = "width" if isinstance(self, (Rectangle, Triangle)) else "alpha"
            raise ValueError(f"{type(self).__name__}: {field} must be positive, got {self.param}")


@dataclass(frozen=True)
class Rectangle(Surrogate):
    """s(x) = 1/a where |x| < a/2 (DA-LIF eq. 11)."""

    width: float = 1.0
    name = "rectangle"

    @property
    def param(self) -> float:
        return float(self.width)

    def derivative(self, x):
        return (x.abs() < self.width / 2).to(x.dtype) / self.width


@dataclass(frozen=True)
class Triangle(Surrogate):
    """s(x) = (1/a) max(0, 1 - |x|/a)."""

    width: float = 1.0
    name = "triangle"

    @property
    def param(self) -> float:
        return float(self.width)

    def derivative(self, x):
        return (1 - x.abs() / self.width).clamp(min=0) / self.width


@dataclass(frozen=True)
class Sigmoid(Surrogate):
    """s(x) = k sig(kx) (1 - sig(kx))."""

    alpha: float = 4.0
    name = "sigmoid"

    @property
    def param(self) -> float:
        return float(self.alpha)

    def derivative(self, x):
        sg = torch.sigmoid(self.alpha * x)
        return self.alpha * sg * (1 - sg)


@dataclass(frozen=True)
class ATan(Surrogate):
    """s(x) = (k/2) / (1 + (pi/2 k x)^2)."""

    alpha: float = 2.0
    name = "atan"

    @property
    def param(self) -> float:
        return float(self.alpha)

    def derivative(self, x):
        return (self.alpha / 2) / (1 + (math.pi / 2 * self.alpha * x) ** 2)


_BY_NAME = {cls.name: cls for cls in (Rectangle, Triangle, Sigmoid, ATan)}


def in_kernel(surrogate: Surrogate) -> bool:
    """Whether the compiled kernels compute this surrogate: they know the four above by
    ``name`` and ``param``, so a subclass that defines its own ``derivative`` (or ``param``),
    or another name, runs only in the reference."""
    builtin = _BY_NAME.get(surrogate.name)
    return (builtin is not None and isinstance(surrogate, builtin)
            and type(surrogate).derivative is builtin.derivative and type(surrogate).param is builtin.param)


def get(surrogate: str | Surrogate) -> Surrogate:
    """A surrogate object from a name (with its default parameter) or an object."""
    if isinstance(surrogate, Surrogate):
        return surrogate
    if isinstance(surrogate, str) and surrogate.lower() in _BY_NAME:
        return _BY_NAME[surrogate.lower()]()
    raise ValueError(
        f"surrogate must be one of {sorted(_BY_NAME)} or an object of snnfast.surrogate, got {surrogate!r}"
    )
