"""Checks and normalises the arguments of snnfast's public functions (the ops, the
memory-saving paths and the layers), for the kernels and the reference alike, so that bad
input fails with the same error wherever it is passed: one that names the argument and says
what is expected. Also where the compiled ops refuse what they cannot do (see check_autograd)."""
from __future__ import annotations

import inspect
import numbers
from typing import Any, NamedTuple

import torch
import torch.autograd.forward_ad as forward_ad

from .. import surrogate as surrogates

RESETS = ("hard", "soft", "none")


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """The arithmetic dtype: float64 for float64 input, float32 for every other float."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_input(x, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3:
        raise ValueError(
            f"{name} must be [T, B, *F] with at least one neuron dimension, got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"{name} must be floating point, got {x.dtype}")


def param_kind(value: torch.Tensor, F: tuple, name: str) -> str:
    """'layer', 'channel' or 'neuron' (docs/neuron.md, Shapes), else a ValueError naming `name`."""
    if value.numel() == 1 and value.dim() <= 1:
        return "layer"
    if tuple(value.shape) == F:
        return "neuron"
    if value.dim() == 1 and value.shape[0] == F[0]:
        return "channel"
    raise ValueError(
        f"{name} has shape {tuple(value.shape)}; expected a single value, a per-channel ({F[0]},) "
        f"tensor or a per-neuron {F} tensor for input neurons of shape {F}"
    )


def check_param(value, x: torch.Tensor, name: str) -> None:
    if isinstance(value, torch.Tensor):
        # A 0-d CPU tensor is a scalar for any device, as in torch's own ops.
        if value.device != x.device and not (value.dim() == 0 and value.device.type == "cpu"):
            raise ValueError(f"{name} is on {value.device} but x is on {x.device}")
        if not (value.is_floating_point() or value.dtype in (torch.int32, torch.int64)):
            raise TypeError(f"{name} must be a real number or tensor, got dtype {value.dtype}")
        param_kind(value, tuple(x.shape[2:]), name)
    elif not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(value).__name__}")


def check_state(u0, x: torch.Tensor) -> None:
    if u0 is None or (isinstance(u0, numbers.Real) and not isinstance(u0, bool)):
        return
    if not isinstance(u0, torch.Tensor):
        raise TypeError(f"u0 must be None, a float or a torch.Tensor, got {type(u0).__name__}")
    if u0.device != x.device:
        raise ValueError(f"u0 is on {u0.device} but x is on {x.device}")
    state_shape = tuple(x.shape[1:])
    if u0.dim() > len(state_shape) or any(
        a != 1 and a != b for a, b in zip(reversed(u0.shape), reversed(state_shape))
    ):
        raise ValueError(
            f"u0 has shape {tuple(u0.shape)}, which does not broadcast to the state shape [B, *F] = {state_shape}"
        )


def check_flag(value, name: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")


def check_positive_int(value, name: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int ({what}), got {value!r}")


def check_reset(reset, v_reset) -> None:
    """reset is one of RESETS; v_reset a float, and left at 0 unless the reset is hard (the
    only one that reads it: a v_reset given with another reset would be ignored)."""
    if reset not in RESETS:
        raise ValueError(f"reset must be one of {RESETS}, got {reset!r}")
    if not isinstance(v_reset, numbers.Real) or isinstance(v_reset, bool):
        raise TypeError(f"v_reset must be a float, got {type(v_reset).__name__}")
    if reset != "hard" and v_reset != 0:
        raise ValueError(f"v_reset = {v_reset} has no effect with reset={reset!r}: only the hard reset "
                         "sets the membrane to v_reset; pass reset='hard' or leave v_reset at 0")


def check_lif_args(x, beta, alpha, threshold, u0, reset, v_reset, surrogate, detach_reset=False,
                   return_state=False, return_membrane=False) -> surrogates.Surrogate:
    """Raises a clear error for any bad argument; returns the surrogate as an object."""
    check_input(x)
    for name, value in (("beta", beta), ("alpha", alpha), ("threshold", threshold)):
        check_param(value, x, name)
    check_state(u0, x)
    check_reset(reset, v_reset)
    for name, value in (("detach_reset", detach_reset), ("return_state", return_state),
                        ("return_membrane", return_membrane)):
        check_flag(value, name)
    return surrogates.get(surrogate)


def check_recurrent_lif_args(x, V, beta, alpha, threshold, u0, reset, v_reset, surrogate, detach_reset=False,
                             return_state=False, return_membrane=False) -> surrogates.Surrogate:
    """check_lif_args, plus x of shape [T, B, N] and V an [N, N] tensor on x's device."""
    check_input(x)
    if x.dim() != 3:
        raise ValueError(f"x must be [T, B, N] for a recurrent layer, got shape {tuple(x.shape)}")
    if not isinstance(V, torch.Tensor):
        raise TypeError(f"V must be a torch.Tensor, got {type(V).__name__}")
    if not V.is_floating_point():
        raise TypeError(f"V must be floating point, got {V.dtype}")
    N = x.shape[2]
    if V.dim() != 2 or V.shape[0] != V.shape[1]:
        raise ValueError(f"V must be a square [N, N] matrix, got shape {tuple(V.shape)}")
    if V.shape[0] != N:
        raise ValueError(f"V has shape {tuple(V.shape)} but x has N = {N} neurons; expected V of shape ({N}, {N})")
    if V.device != x.device:
        raise ValueError(f"V is on {V.device} but x is on {x.device}")
    return check_lif_args(x, beta, alpha, threshold, u0, reset, v_reset, surrogate, detach_reset,
                          return_state, return_membrane)


class Neuron(NamedTuple):
    """The neuron arguments of lif, recurrent_lif and their reference (docs/neuron.md):
    beta and the keywords after it, defined here once. neuron_args checks them."""

    beta: Any
    alpha: Any = 1.0
    threshold: Any = 1.0
    reset: str = "hard"
    v_reset: float = 0.0
    detach_reset: bool = False
    u0: Any = None
    surrogate: Any = "rectangle"  # a surrogate object once checked
    return_state: bool = False
    return_membrane: bool = False

    def op_args(self) -> tuple:
        """The trailing arguments of torch.ops.snnfast.lif and recurrent_lif: (beta, alpha,
        threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param)."""
        return (as_tensor(self.beta), as_tensor(self.alpha), as_tensor(self.threshold),
                None if self.u0 is None else as_tensor(self.u0), self.reset, float(self.v_reset),
                bool(self.detach_reset), self.surrogate.name, self.surrogate.param)

    def keywords(self) -> dict:
        """The keywords after beta, to call another function of this signature."""
        return {name: getattr(self, name) for name in self._fields[1:]}


def neuron_args(op: str, x, V, beta, keywords: dict) -> Neuron:
    """The checked Neuron of a call op(x, [V,] beta, **keywords) (V is None for lif): a clear
    error for an unknown keyword or a bad argument."""
    unknown = sorted(set(keywords) - set(Neuron._fields))
    if unknown:
        raise TypeError(f"{op}() got an unexpected keyword argument {unknown[0]!r}")
    n = Neuron(beta, **keywords)
    check = (check_lif_args(x, n.beta, n.alpha, n.threshold, n.u0, n.reset, n.v_reset, n.surrogate,
                            n.detach_reset, n.return_state, n.return_membrane)
             if V is None else
             check_recurrent_lif_args(x, V, n.beta, n.alpha, n.threshold, n.u0, n.reset, n.v_reset,
                                      n.surrogate, n.detach_reset, n.return_state, n.return_membrane))
    return n._replace(surrogate=check)


def neuron_signature(fn):
    """Gives fn(x, [V,] beta, **neuron) the signature it accepts, for help() and inspect:
    the Neuron's keywords with their defaults, then fn's own keywords (its flags, such as
    return_events, read after the neuron's arguments they modify)."""
    params = list(inspect.signature(fn).parameters.values())[:-1]  # without **neuron
    own = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    params = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
               for name, default in Neuron._field_defaults.items()]
    fn.__signature__ = inspect.Signature(params + own)
    return fn


def check_linear_lif_args(spikes_in, weight, bias, check_binary) -> None:
    """The Linear side of snnfast.nn.LinearLIF: spikes_in [T, B, in_features], weight
    [out_features, in_features], bias None or [out_features]."""
    if not isinstance(spikes_in, torch.Tensor) or spikes_in.dim() != 3:
        shape = tuple(spikes_in.shape) if isinstance(spikes_in, torch.Tensor) else type(spikes_in).__name__
        raise ValueError(f"spikes_in must be a [T, B, in_features] tensor, got {shape}")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or weight.shape[1] != spikes_in.shape[2]:
        raise ValueError(
            f"weight must be [out_features, in_features = {spikes_in.shape[2]}], "
            f"got {tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}"
        )
    if bias is not None and (not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (weight.shape[0],)):
        shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
        raise ValueError(f"bias must be None or [out_features = {weight.shape[0]}], got {shape}")
    check_flag(check_binary, "check_binary")


_FUNCTORCH_TRANSFORMS = ("Grad", "Jvp")


def check_autograd(op: str, tensors, instead: str = "snnfast.reference.lif") -> None:
    """Refuses what the compiled ops' gradients cannot do instead of returning zeros: they
    have a first-order reverse-mode backward (loss.backward(), torch.autograd.grad) and no
    forward-mode derivative, no derivative of their backward, and an autograd function that
    torch.func's grad transforms do not accept. torch.vmap works (PyTorch loops over the
    batch). The reference (pure PyTorch) supports all of it."""
    if torch.compiler.is_compiling():
        return
    stack = torch._C._functorch.get_interpreter_stack() or ()
    transforms = {str(i.key()).rsplit(".", 1)[-1] for i in stack} & set(_FUNCTORCH_TRANSFORMS)
    forward_mode = forward_ad._current_level >= 0 and any(
        isinstance(t, torch.Tensor) and forward_ad.unpack_dual(t).tangent is not None for t in tensors)
    if transforms or forward_mode:
        what = ("forward-mode AD (torch.func.jvp, torch.autograd.forward_ad)" if forward_mode or "Jvp" in transforms
                else "torch.func's grad transforms (torch.func.grad, jacrev, jacfwd, hessian)")
        raise RuntimeError(
            f"{op} does not support {what}: its compiled kernel has a reverse-mode backward only "
            f"(loss.backward() or torch.autograd.grad). Use {instead} (the same neuron in pure "
            "PyTorch, slower), which supports it"
        )


def check_first_order(op: str, tensors, instead: str = "snnfast.reference.lif") -> None:
    """Called in a compiled op's backward: under create_graph=True (double backward,
    Hessians, gradient penalties) its gradients would be constants to autograd, so the second
    derivative through it would silently be zero."""
    if torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors):
        raise RuntimeError(
            f"{op} does not support double backward (backward with create_graph=True, "
            "torch.autograd.functional.hessian, gradient penalties): its backward is a compiled "
            f"kernel without a derivative of its own. Use {instead} (the same neuron in pure "
            "PyTorch, slower) for second derivatives"
        )


def as_tensor(value) -> torch.Tensor:
    """A parameter as a tensor: a float becomes a 0-d CPU tensor, which the op reads as a
    scalar on any device (no copy to the GPU, no synchronisation)."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.tensor(float(value), dtype=torch.float64)


def results(spikes, u_last, membrane, return_state: bool, return_membrane: bool):
    """spikes alone, or (spikes, [u_last], [membrane]) as the flags ask."""
    if not (return_state or return_membrane):
        return spikes
    out = (spikes,)
    if return_state:
        out += (u_last,)
    if return_membrane:
        out += (membrane,)
    return out
