"""snnfast.convert: swaps SpikingJelly neurons in a model for snnfast layers.

SpikingJelly is imported only here, when convert() is called.
"""
from __future__ import annotations

import copy
import numbers
import warnings

import torch
from torch import nn

from .ops import _args
from . import surrogate as surrogates
from .nn import IF, LIF

__all__ = ["convert"]


def _surrogate(sj_surrogate, function):
    """The snnfast surrogate with the same derivative as a SpikingJelly one, or None."""
    alpha = getattr(function, "alpha", None)
    if not getattr(function, "spiking", False) or not isinstance(alpha, numbers.Real) or alpha <= 0:
        return None
    kind = type(function)
    if kind is sj_surrogate.Sigmoid:  # alpha sig(alpha x)(1 - sig(alpha x))
        return surrogates.Sigmoid(float(alpha))
    if kind is sj_surrogate.ATan:  # (alpha/2) / (1 + (pi/2 alpha x)^2)
        return surrogates.ATan(float(alpha))
    if kind is sj_surrogate.PiecewiseQuadratic:  # alpha - alpha^2 |x| on |x| <= 1/alpha
        return surrogates.Triangle(1.0 / alpha)
    if kind is sj_surrogate.Rect:  # alpha on |x| < 0.5/alpha
        return surrogates.Rectangle(1.0 / alpha)
    return None


def _reset_options(node) -> dict:
    """SpikingJelly's hard reset to v_reset starts at v = v_reset; in the shifted state
    u = v - v_reset it is a hard reset to 0 from 0 with the threshold v_threshold - v_reset, and
    its charge (v + (x - (v - v_reset)) / tau, or v + x for IF) is h = beta u + alpha x."""
    if node.v_reset is None:
        return dict(reset="soft", threshold=float(node.v_threshold))
    return dict(reset="hard", threshold=float(node.v_threshold) - float(node.v_reset), v_reset=0.0)


def _replacement(node, sj_neuron, sj_surrogate, stateful: bool):
    """The snnfast module equal to `node`, or a string saying why there is none."""
    kind = type(node)
    if kind not in (sj_neuron.LIFNode, sj_neuron.IFNode, sj_neuron.ParametricLIFNode):
        return "not a LIFNode, IFNode or ParametricLIFNode"
    surrogate = _surrogate(sj_surrogate, node.surrogate_function)
    if surrogate is None:
        return f"surrogate {node.surrogate_function!r} has no snnfast equivalent"
    if node.step_mode not in ("m", "s"):
        return f"step_mode {node.step_mode!r}"
    if getattr(node, "store_v_seq", False):
        return "store_v_seq=True (snnfast layers do not record v_seq)"
    if getattr(node, "_neuron_precision", None) is not None:
        return "a custom neuron precision is set"
    options = dict(_reset_options(node), detach_reset=bool(node.detach_reset), surrogate=surrogate,
                   stateful=stateful, step_mode=node.step_mode)
    if kind is sj_neuron.IFNode:
        return IF(**options)
    if kind is sj_neuron.LIFNode:
        return LIF(1.0 - 1.0 / float(node.tau), decay_input=bool(node.decay_input), **options)
    # ParametricLIFNode: 1/tau = sigmoid(w), so beta = 1 - sigmoid(w) = sigmoid(-w).
    w = node.w.detach()
    if w.dim() != 0:
        return "a ParametricLIFNode w that is not a single value"
    module = LIF(float(w.neg().sigmoid()), leak="learnable", decay_input=bool(node.decay_input), **options)
    module.beta_raw = nn.Parameter(w.neg().clone(), requires_grad=node.w.requires_grad)
    return module


def convert(model: nn.Module, inplace: bool = False, *, stateful: bool = True) -> nn.Module:
    """Replaces SpikingJelly LIFNode, IFNode and ParametricLIFNode modules with snnfast layers
    that give the same spikes and the same gradients.

    Mapping (docs/neuron.md): LIFNode(tau) -> LIF(beta = 1 - 1/tau, alpha = 1/tau
    with decay_input=True else 1); IFNode -> IF; ParametricLIFNode(w) -> LIF(leak="learnable")
    with beta_raw = -w, since SpikingJelly's beta = 1 - sigmoid(w) = sigmoid(-w): the gradient of
    beta_raw is minus that of w. v_reset=None -> reset="soft"; a hard reset to v_reset becomes a
    hard reset to 0 with threshold v_threshold - v_reset (the same neuron, its membrane and state
    shifted by v_reset). Surrogates (SpikingJelly's alpha is a sharpness or an inverse width): Sigmoid(alpha) ->
    Sigmoid(sharpness=alpha), ATan(alpha) -> ATan(sharpness=alpha),
    PiecewiseQuadratic(alpha) -> Triangle(1/alpha), Rect(alpha) -> Rectangle(1/alpha).

    Like the SpikingJelly modules, the new layers carry their state from one call to the next
    until reset (stateful=True; SpikingJelly's functional.reset_net resets them too); pass
    stateful=False for layers that start every call from rest. Both step modes are kept.
    Convert a model whose neurons are at rest: a state held by a SpikingJelly module is not
    carried over. Modules that cannot be mapped are left in place and named in one warning.

    Args:
        model: any nn.Module; it may itself be a SpikingJelly neuron.
        inplace: change `model` itself instead of a deep copy.
        stateful: see above.

    Returns:
        The converted model (`model` itself when inplace=True, except when `model` is a neuron).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _args.check_flag(inplace, "inplace")
    _args.check_flag(stateful, "stateful")
    try:
        from spikingjelly.activation_based import neuron as sj_neuron
        from spikingjelly.activation_based import surrogate as sj_surrogate
    except ImportError as error:
        raise ImportError("snnfast.convert needs SpikingJelly (spikingjelly.activation_based)") from error

    if not inplace:
        model = _copy_at_rest(model)
    skipped = []

    def swap(module: nn.Module, name: str):
        if not type(module).__module__.startswith(sj_neuron.__name__):
            return None
        new = _replacement(module, sj_neuron, sj_surrogate, stateful)
        if isinstance(new, str):
            skipped.append(f"{name or 'model'} ({type(module).__name__}: {new})")
            return None
        return new.train(module.training)

    root = swap(model, "")
    if root is not None:
        model = root
    else:
        for parent_name, parent in list(model.named_modules()):
            for child_name, child in list(parent.named_children()):
                full_name = f"{parent_name}.{child_name}" if parent_name else child_name
                new = swap(child, full_name)
                if new is not None:
                    setattr(parent, child_name, new)
    if skipped:
        warnings.warn("snnfast.convert left these modules unchanged: " + "; ".join(skipped), stacklevel=2)
    _forget_reset_cache(model)
    return model


def _copy_at_rest(model: nn.Module) -> nn.Module:
    """copy.deepcopy(model), where the states a forward in grad mode left in the modules
    (SpikingJelly's v, the state of snnfast's stateful layers) are copied detached: autograd
    cannot copy a tensor that is not a leaf, and the copy has no use for the graph."""
    memo = {}
    for module in model.modules():
        held = list(vars(module).values()) + list(getattr(module, "_memories", {}).values())
        for value in held:
            if isinstance(value, torch.Tensor) and value.grad_fn is not None:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


def _forget_reset_cache(model: nn.Module) -> None:
    """SpikingJelly's reset_net caches the modules it resets per model; drop the stale list."""
    try:
        from spikingjelly.activation_based.functional import invalidate_reset_cache
    except ImportError:
        return
    invalidate_reset_cache(model)
