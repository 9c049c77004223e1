"""Neuron layers over [T, B, *F]: each one chooses the parameters of snnfast.lif and calls it.

The math lives in the op (docs/neuron.md); these modules only hold the
learnable parameters, their parametrisations (sigmoid for a learnable beta, tanh for DA-LIF)
and, when asked, the state u carried from one call to the next.
"""
from __future__ import annotations

import math
import numbers

import torch
from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin
from torch.nn.parameter import UninitializedParameter

from ..ops import _args
from .. import surrogate as surrogates
from ..ops import lif as lif_op

__all__ = ["LIF", "IF", "DALIF"]

LEAKS = ("normal", "none", "complete", "learnable")
STEP_MODES = ("m", "s")


def _logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)


class _Neuron(LazyModuleMixin, nn.Module):
    """State handling and the call to the op, shared by every neuron layer.

    Subclasses implement `_decays()` -> (beta, alpha). Parameters whose shape depends on the
    input (per-channel beta, the IMP u0) may be left lazy (torch.nn.UninitializedParameter):
    the first forward gives them their shape, on the input's device. An optimizer built before
    that still updates them (the parameter objects are filled in place), but anything that
    reads their shape or device first (moving the model, parameter groups, counting
    parameters, loading into a sharded model) needs one dry forward, or the shapes given to
    the constructor (channels=, imp_shape=).
    """

    def __init__(self, *, threshold, reset, v_reset, detach_reset, surrogate, imp, imp_shape,
                 imp_init, stateful, step_mode):
        super().__init__()
        _args.check_reset(reset, v_reset)
        _args.check_flag(detach_reset, "detach_reset")
        _args.check_flag(stateful, "stateful")
        _args.check_flag(imp, "imp")
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be 'm' (input [T, B, *F]) or 's' (input [B, *F]), got {step_mode!r}")
        if not isinstance(threshold, (numbers.Real, torch.Tensor)) or isinstance(threshold, bool):
            raise TypeError(f"threshold must be a float or a torch.Tensor, got {type(threshold).__name__}")
        if imp_shape is not None and not imp:
            raise ValueError("imp_shape is only used with imp=True")
        if isinstance(threshold, torch.Tensor):
            self.register_buffer("threshold", threshold.detach().clone())
        else:
            self.threshold = float(threshold)
        self.reset_mode = reset
        self.v_reset = float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate = surrogates.get(surrogate)
        self.stateful = bool(stateful)
        self.step_mode = step_mode
        self.imp = bool(imp)
        self.imp_init = float(imp_init)
        if imp:
            # IMP (Shen et al.): a learnable initial state u0, one value per neuron.
            if imp_shape is None:
                self.u0 = UninitializedParameter()
            else:
                self.u0 = nn.Parameter(torch.full(tuple(imp_shape), self.imp_init))
        self._state = None

    # --- parameters -------------------------------------------------------------------
    def _decays(self):
        raise NotImplementedError

    def initialize_parameters(self, x: torch.Tensor) -> None:
        """Creates the lazy parameters from the first input (called by the lazy-module hook)."""
        F = self._neuron_shape(x)
        dtype = _args.acc_dtype(x.dtype) if x.is_floating_point() else None
        if self.imp and isinstance(self.u0, UninitializedParameter):
            self.u0.materialize(F, device=x.device, dtype=dtype)
            with torch.no_grad():
                self.u0.fill_(self.imp_init)

    def _neuron_shape(self, x: torch.Tensor) -> tuple:
        F = tuple(x.shape[1:] if self.step_mode == "s" else x.shape[2:])
        if not F:
            expected = "[B, *F]" if self.step_mode == "s" else "[T, B, *F]"
            raise ValueError(f"x must be {expected} with at least one neuron dimension, got shape {tuple(x.shape)}")
        return F

    # --- state ------------------------------------------------------------------------
    def reset_state(self) -> None:
        """Forgets the carried state: the next call starts from u0 (0 or the IMP)."""
        self._state = None

    def reset(self) -> None:
        """Same as reset_state(); named so that SpikingJelly's functional.reset_net finds it."""
        self.reset_state()

    def detach_state(self) -> None:
        """Cuts the carried state from the graph (truncated BPTT across calls)."""
        if self._state is not None:
            self._state = self._state.detach()

    @property
    def state(self):
        """The carried state u_T, [B, *F], or None."""
        return self._state

    def _carries_state(self) -> bool:
        return self.stateful or self.step_mode == "s"

    def _check_state_shape(self, x: torch.Tensor) -> None:
        """x [T, B, *F] continues the carried state, or a clear error naming reset_state()."""
        if self._state is not None and tuple(self._state.shape) != tuple(x.shape[1:]):
            raise ValueError(
                f"the carried state has shape {tuple(self._state.shape)} but this input's [B, *F] is "
                f"{tuple(x.shape[1:])}; call reset_state() before a sequence of another shape"
            )

    def _initial_state(self, x: torch.Tensor):
        if self._state is not None:
            self._check_state_shape(x)
            return self._state
        return self.u0 if self.imp else None

    def __getstate__(self):
        # A copy (copy.deepcopy, pickle) carries the state's value, not the graph of the
        # forward that made it: autograd cannot copy a tensor that is not a leaf.
        state = super().__getstate__().copy()
        for name in ("_state", "_last_spikes"):
            if isinstance(state.get(name), torch.Tensor):
                state[name] = state[name].detach()
        return state

    # --- forward ----------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._as_sequence(x)
        spikes = self._run(x, lif_op)
        return spikes[0] if self.step_mode == "s" else spikes

    def _as_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """x as [T, B, *F]: a single step [B, *F] becomes a sequence of length 1."""
        if self.step_mode != "s":
            return x
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        self._neuron_shape(x)
        return x.unsqueeze(0)

    def _run(self, x: torch.Tensor, op, **extra) -> torch.Tensor:
        """Calls op(x, beta, ...) with this layer's parameters, carrying u_T when asked."""
        beta, alpha = self._decays()
        carry = self._carries_state()
        out = op(
            x, beta, alpha=alpha, threshold=self.threshold, reset=self.reset_mode,
            v_reset=self.v_reset, detach_reset=self.detach_reset, u0=self._initial_state(x),
            surrogate=self.surrogate, return_state=carry, **extra,
        )
        if not carry:
            return out
        spikes, self._state = out
        return spikes

    def _common_repr(self) -> str:
        parts = [f"threshold={self.threshold}", f"reset={self.reset_mode!r}"]
        if self.reset_mode == "hard":
            parts.append(f"v_reset={self.v_reset}")
        if self.detach_reset:
            parts.append("detach_reset=True")
        parts.append(f"surrogate={self.surrogate}")
        if self.imp:
            parts.append("imp=True")
        if self.stateful:
            parts.append("stateful=True")
        if self.step_mode != "m":
            parts.append(f"step_mode={self.step_mode!r}")
        return ", ".join(parts)


class LIF(_Neuron):
    """Leaky integrate-and-fire neurons over [T, B, *F] (or [B, *F] with step_mode="s").

    h_t = beta * u_{t-1} + alpha * x_t, spike when h_t >= threshold, then reset; see
    docs/neuron.md. The functional-roles paper's variants are `leak` and `reset`.

    Args:
        beta: the decay of the membrane (default 0.5, SpikingJelly's tau = 2). A float, or a
            per-channel / per-neuron tensor for leak="normal"; the initial value for
            leak="learnable". Not allowed with leak="none" or "complete".
        leak: "normal" (fixed beta), "none" (beta = 1, eq. 6), "complete" (beta = 0, eq. 7) or
            "learnable": beta = sigmoid(beta_raw), always in [0, 1], with beta_raw initialised
            so that beta equals the given value (which must lie in (0, 1)).
        learnable_shape: "layer" (one beta) or "channel" (one per F[0], e.g. per conv channel).
        channels: the channel count for learnable_shape="channel"; if None, taken from the
            first input (lazy, like imp_shape below).
        decay_input: scale the input by (1 - beta), as SpikingJelly's decay_input=True
            (alpha = 1 - beta; otherwise alpha = 1).
        threshold, reset, v_reset, detach_reset, surrogate: as snnfast.lif.
        imp: a learnable initial state u0 per neuron (the IMP paper's initial membrane potential).
        imp_shape: its shape F; if None, taken from the first input (lazy: the first forward
            creates it, so run one dry forward before moving the model or counting parameters).
        imp_init: its initial value (0: the usual zero start).
        stateful: carry u_T from one call to the next until reset_state(), for a sequence
            fed in chunks; gradients flow across chunks until detach_state().
        step_mode: "m" (input [T, B, *F]) or "s" (one step, input [B, *F], state always carried).
    """

    def __init__(self, beta=None, *, leak: str = "normal", learnable_shape: str = "layer",
                 channels: int | None = None, decay_input: bool = False, threshold=1.0,
                 reset: str = "hard", v_reset: float = 0.0, detach_reset: bool = False,
                 surrogate="rectangle", imp: bool = False, imp_shape=None, imp_init: float = 0.0,
                 stateful: bool = False, step_mode: str = "m"):
        super().__init__(threshold=threshold, reset=reset, v_reset=v_reset, detach_reset=detach_reset,
                         surrogate=surrogate, imp=imp, imp_shape=imp_shape, imp_init=imp_init,
                         stateful=stateful, step_mode=step_mode)
        if leak not in LEAKS:
            raise ValueError(f"leak must be one of {LEAKS}, got {leak!r}")
        if leak in ("none", "complete") and beta is not None:
            raise ValueError(f"beta is fixed by leak={leak!r}; do not pass beta")
        if leak == "none" and decay_input:
            raise ValueError("decay_input=True would scale the input by 1 - beta = 0 with leak='none'")
        if learnable_shape not in ("layer", "channel"):
            raise ValueError(f"learnable_shape must be 'layer' or 'channel', got {learnable_shape!r}")
        if leak != "learnable" and (learnable_shape != "layer" or channels is not None):
            raise ValueError("learnable_shape and channels are only used with leak='learnable'")
        if channels is not None and learnable_shape != "channel":
            raise ValueError("channels is only used with learnable_shape='channel'")
        self.leak = leak
        self.decay_input = bool(decay_input)
        self.learnable_shape = learnable_shape
        if beta is None:
            beta = {"none": 1.0, "complete": 0.0}.get(leak, 0.5)
        if leak == "learnable":
            if isinstance(beta, torch.Tensor) or not 0.0 < float(beta) < 1.0:
                raise ValueError(f"a learnable beta is initialised from a float in (0, 1), got {beta!r}")
            self.beta_init = float(beta)
            if learnable_shape == "layer":
                self.beta_raw = nn.Parameter(torch.tensor(_logit(self.beta_init)))
            elif channels is None:
                self.beta_raw = UninitializedParameter()
            else:
                self.beta_raw = nn.Parameter(torch.full((int(channels),), _logit(self.beta_init)))
        elif isinstance(beta, torch.Tensor):
            self.register_buffer("_beta", beta.detach().clone())
        elif isinstance(beta, numbers.Real) and not isinstance(beta, bool):
            self._beta = float(beta)
        else:
            raise TypeError(f"beta must be a float or a torch.Tensor, got {type(beta).__name__}")

    def initialize_parameters(self, x: torch.Tensor) -> None:
        super().initialize_parameters(x)
        if self.leak == "learnable" and isinstance(self.beta_raw, UninitializedParameter):
            channels = self._neuron_shape(x)[0]
            self.beta_raw.materialize((channels,), device=x.device, dtype=_args.acc_dtype(x.dtype))
            with torch.no_grad():
                self.beta_raw.fill_(_logit(self.beta_init))

    @property
    def beta(self):
        """The decay in use: a float, a fixed tensor, or sigmoid(beta_raw) when learnable."""
        return torch.sigmoid(self.beta_raw) if self.leak == "learnable" else self._beta

    def _decays(self):
        beta = self.beta
        return beta, (1 - beta) if self.decay_input else 1.0

    def extra_repr(self) -> str:
        if self.leak == "learnable":
            lead = f"leak='learnable', learnable_shape={self.learnable_shape!r}, beta_init={self.beta_init}"
        else:
            beta = self._beta if isinstance(self._beta, float) else f"tensor{tuple(self._beta.shape)}"
            lead = f"beta={beta}" if self.leak == "normal" else f"leak={self.leak!r}"
        if self.decay_input:
            lead += ", decay_input=True"
        return f"{lead}, {self._common_repr()}"


class IF(LIF):
    """Integrate-and-fire: LIF with leak="none" (beta = 1). Same options as LIF otherwise."""

    def __init__(self, **kwargs):
        for name in ("beta", "leak", "decay_input", "learnable_shape", "channels"):
            if name in kwargs:
                raise TypeError(f"IF has no {name!r} option (beta is 1); use LIF for a leak")
        super().__init__(leak="none", **kwargs)


class DALIF(_Neuron):
    """DA-LIF (Zhang et al.): learnable spatial (alpha) and temporal (beta) decays per layer.

    h_t = beta * u_{t-1} + alpha * x_t (DA-LIF eq. 9) with alpha = tanh(alpha_raw) and
    beta = tanh(beta_raw), one pair per layer. tanh is the bounding the paper prefers over the
    sigmoid (section IV-D2). The paper initialises "the parameters of these functions" to 1
    (IV-A2, IV-D2); a decay of exactly 1 is out of tanh's reach, so we read that as the raw
    parameters: alpha = beta = tanh(1) ~ 0.762 at the start. Pass alpha_init/beta_init to change it.
    Defaults follow the paper: threshold 1, hard reset to 0, rectangle surrogate of width 1
    (eq. 11). Other options as LIF.
    """

    def __init__(self, *, alpha_init: float = 1.0, beta_init: float = 1.0, threshold=1.0,
                 reset: str = "hard", v_reset: float = 0.0, detach_reset: bool = False,
                 surrogate=surrogates.Rectangle(1.0), imp: bool = False, imp_shape=None,
                 imp_init: float = 0.0, stateful: bool = False, step_mode: str = "m"):
        super().__init__(threshold=threshold, reset=reset, v_reset=v_reset, detach_reset=detach_reset,
                         surrogate=surrogate, imp=imp, imp_shape=imp_shape, imp_init=imp_init,
                         stateful=stateful, step_mode=step_mode)
        self.alpha_raw = nn.Parameter(torch.tensor(float(alpha_init)))
        self.beta_raw = nn.Parameter(torch.tensor(float(beta_init)))

    @property
    def alpha(self) -> torch.Tensor:
        return torch.tanh(self.alpha_raw)

    @property
    def beta(self) -> torch.Tensor:
        return torch.tanh(self.beta_raw)

    def _decays(self):
        return self.beta, self.alpha

    def extra_repr(self) -> str:
        return f"alpha=tanh({self.alpha_raw.item():.4g}), beta=tanh({self.beta_raw.item():.4g}), {self._common_repr()}"
