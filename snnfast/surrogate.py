"""Surrogate derivatives of the Heaviside spike, as docs/neuron.md defines them.

Each surrogate names itself (``name``), carries its one parameter (``param``: the width of
Rectangle and Triangle, the sharpness of Sigmoid and ATan) and gives its derivative in
PyTorch for the reference. The kernels compute the same functions in C++.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields

import torch

__all__ = ["Surrogate", "Rectangle", "Triangle", "Sigmoid", "ATan", "get", "in_kernel"]


@dataclass(frozen=True)
class Surrogate:
    name = ""

    @property
    def param(self) -> float:
        """The surrogate's one parameter: the width for rectangle and triangle, the sharpness
        for sigmoid and atan (what the kernels receive beside the name)."""
        raise NotImplementedError

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        """s(x) at x = h - threshold."""
        raise NotImplementedError

    def __post_init__(self):
        if not self.param > 0:
            field = fields(self)[0].name
            raise ValueError(f"{type(self).__name__}: {field} must be positive, got {self.param}")


class _Windowed(Surrogate):
    """A surrogate whose one parameter is the width a of its window: Rectangle and Triangle."""

    @property
    def param(self) -> float:
        return float(self.width)


@dataclass(frozen=True)
class Rectangle(_Windowed):
    """s(x) = 1/a where |x| < a/2 (DA-LIF eq. 11), a the width."""

    width: float = 1.0
    name = "rectangle"

    def derivative(self, x):
        return (x.abs() < self.width / 2).to(x.dtype) / self.width


@dataclass(frozen=True)
class Triangle(_Windowed):
    """s(x) = (1/a) max(0, 1 - |x|/a), a the width."""

    width: float = 1.0
    name = "triangle"

    def derivative(self, x):
        return (1 - x.abs() / self.width).clamp(min=0) / self.width


class _Sharpened(Surrogate):
    """A surrogate whose one parameter is its sharpness k: Sigmoid and ATan. Their sharpness
    was once the keyword ``alpha``, the name of the neuron's input scale; ``alpha=`` and
    ``.alpha`` still work, with a DeprecationWarning."""

    def __init__(self, sharpness: float | None = None, *, alpha: float | None = None):
        if alpha is not None:
            if sharpness is not None:
                raise TypeError(f"{type(self).__name__}: give sharpness only (alpha is its old name)")
            _warn_alpha(f"{type(self).__name__}(alpha=...)", "sharpness=...")
            sharpness = alpha
        if sharpness is None:
            sharpness = fields(self)[0].default
        object.__setattr__(self, "sharpness", sharpness)
        self.__post_init__()

    @property
    def param(self) -> float:
        return float(self.sharpness)

    @property
    def alpha(self) -> float:
        _warn_alpha(f"{type(self).__name__}.alpha", ".sharpness")
        return self.sharpness

    def __setstate__(self, state: dict) -> None:
        # An object pickled before the rename holds "alpha".
        if "alpha" in state:
            state = {"sharpness": state["alpha"], **{k: v for k, v in state.items() if k != "alpha"}}
        for key, value in state.items():
            object.__setattr__(self, key, value)


def _warn_alpha(old: str, new: str) -> None:
    warnings.warn(f"snnfast.surrogate.{old} is deprecated: use {new} (alpha names the neuron's input "
                  "scale, not the surrogate's sharpness)", DeprecationWarning, stacklevel=3)


@dataclass(frozen=True, init=False)
class Sigmoid(_Sharpened):
    """s(x) = k sig(kx) (1 - sig(kx)), k the sharpness."""

    sharpness: float = 4.0
    name = "sigmoid"

    def derivative(self, x):
        sg = torch.sigmoid(self.sharpness * x)
        return self.sharpness * sg * (1 - sg)


@dataclass(frozen=True, init=False)
class ATan(_Sharpened):
    """s(x) = (k/2) / (1 + (pi/2 k x)^2), k the sharpness."""

    sharpness: float = 2.0
    name = "atan"

    def derivative(self, x):
        return (self.sharpness / 2) / (1 + (math.pi / 2 * self.sharpness * x) ** 2)


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
