"""Event-driven Linear: binary spikes as events, and y = S W^T + b computed on the events only.

Events are a compressed-row format of spikes [..., N] with rows = the leading dimensions
flattened (T x B for a sequence): offsets [rows + 1] int64 and indices [nnz] int32, the
neurons of row r that fired being indices[offsets[r]:offsets[r + 1]], ascending
(csrc/event_linear.h says why int64 and int32). The ops run in C++ (torch.ops.snnfast.*):
spikes_to_events (one pass to count the spikes of each row, a prefix sum, one pass to fill
the indices), event_linear (for each row, bias plus the rows of W^T of its active inputs:
W is kept transposed so that each gather is a contiguous row, vectorised over the output
features) and event_linear_weight_grad (grad_W^T = S^T g over the same events, each element
summed in the order of the events: deterministic, no atomics).

The work is proportional to the events, not to the rows x inputs of the dense product: at a
3 % spike rate 97 % of the dense multiply-adds are by zero. docs/benchmarks.md#event-linear
has the crossover rate below which it pays.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch

from . import _args, _library

_DTYPES = (torch.float32, torch.float64)


class Events(NamedTuple):
    """Spikes of shape `shape` ([..., N]) as events: see the module's docstring."""

    offsets: torch.Tensor
    indices: torch.Tensor
    shape: torch.Size

    @property
    def rows(self) -> int:
        return self.offsets.shape[0] - 1

    @property
    def rate(self) -> float:
        """The fraction of the elements that are spikes."""
        numel = self.rows * self.shape[-1]
        return self.indices.shape[0] / numel if numel else 0.0

    def row_slice(self, r0: int, r1: int) -> "Events":
        """Rows [r0, r1) (for a sequence [T, B, N]: steps r0 / B to r1 / B). The offsets stay
        absolute positions in the same indices, so nothing is copied."""
        return Events(self.offsets[r0:r1 + 1], self.indices, torch.Size((r1 - r0, self.shape[-1])))

    def to_dense(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The 0/1 tensor of shape `shape` in dtype."""
        rows, n = self.rows, self.shape[-1]
        counts = self.offsets.diff()
        row_of = torch.repeat_interleave(torch.arange(rows, device=self.offsets.device), counts)
        dense = torch.zeros((rows, n), dtype=dtype, device=self.offsets.device)
        first = int(self.offsets[0])
        dense[row_of, self.indices[first:first + row_of.shape[0]].long()] = 1
        return dense.view(self.shape)


def to_events(spikes: torch.Tensor, *, check_binary: bool = True) -> Events:
    """The events of spikes [..., N] (float32, float64, float16, bfloat16, bool or uint8).

    check_binary=True raises a RuntimeError naming `spikes` where a value is neither 0 nor 1
    (checked in the counting pass, at no extra pass); check_binary=False counts every nonzero
    value as a spike, as snnfast.bitpack does."""
    if not isinstance(spikes, torch.Tensor):
        raise TypeError(f"spikes must be a torch.Tensor, got {type(spikes).__name__}")
    _check_loaded("to_events")
    offsets, indices = torch.ops.snnfast.spikes_to_events(spikes.detach(), bool(check_binary))
    return Events(offsets, indices, spikes.shape)


def attach_events(spikes: torch.Tensor, events: Events) -> None:
    """Keeps events with the spikes they are the events of (snnfast.nn.LinearLIF's output
    spikes carry the events its LIF kernel emitted), for attached_events to find. Nothing
    under torch.compile, where a traced tensor carries no Python attributes."""
    if torch.compiler.is_compiling():
        return
    spikes._snnfast_events = (events, spikes._version)


def attached_events(spikes: torch.Tensor) -> Optional[Events]:
    """The events attach_events kept with spikes, or None: also where spikes has been
    modified in place since (its version counter moved), so they can no longer be trusted."""
    if torch.compiler.is_compiling():
        return None  # a traced tensor carries no Python attributes; the graph converts
    attached = getattr(spikes, "_snnfast_events", None)
    if attached is None or attached[1] != spikes._version or attached[0].shape != spikes.shape:
        return None
    return attached[0]


def _check_loaded(name: str) -> None:
    if not _library.LOADED:
        raise RuntimeError(f"snnfast.{name} needs the compiled extension (see README.md)")


class _EventLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, offsets, indices, weight, bias, shape):
        ctx.set_materialize_grads(False)
        y = torch.ops.snnfast.event_linear(offsets, indices, weight.t(), bias)  # the op transposes the view
        ctx.save_for_backward(offsets, indices, weight)
        ctx.shape = shape
        ctx.has_bias = bias is not None
        return y.view(*shape[:-1], weight.shape[0])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        if grad_y is None:
            return (None,) * 6
        offsets, indices, weight = ctx.saved_tensors
        need_spikes, _, _, need_weight, need_bias = ctx.needs_input_grad[:5]
        g = grad_y.reshape(-1, weight.shape[0])
        grad_spikes = torch.mm(g, weight).view(ctx.shape) if need_spikes else None
        grad_weight = (torch.ops.snnfast.event_linear_weight_grad(offsets, indices, g, weight.shape[1]).t()
                       if need_weight else None)
        grad_bias = g.sum(0) if need_bias and ctx.has_bias else None
        return grad_spikes, None, None, grad_weight, grad_bias, None


def event_linear(spikes: Union[torch.Tensor, Events], weight: torch.Tensor,
                 bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """F.linear(spikes, weight, bias) computed on the events of the binary spikes [..., in].

    spikes: a dense 0/1 tensor (converted with to_events, which checks it is binary,
    unless it carries the events it was emitted with: attached_events) or Events. weight [out, in] and bias [out], float32 or float64. Returns [..., out] in the
    weight's dtype. Gradients: of weight and bias over the events; of a dense spikes tensor
    that requires grad, g W (dense, as the layer below needs it); none for Events, which are
    data (the first layer's input).
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
        raise ValueError(f"weight must be a 2-d tensor [out_features, in_features], got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if weight.dtype not in _DTYPES:
        raise TypeError(f"weight must be float32 or float64 (the event kernels' dtypes), got {weight.dtype}")
    if isinstance(spikes, Events):
        events = spikes
    else:
        events = attached_events(spikes) or to_events(spikes)
    if events.shape[-1] != weight.shape[1]:
        raise ValueError(f"spikes has {events.shape[-1]} features in its last dimension, but weight "
                         f"expects {weight.shape[1]} (in_features)")
    dense = None if isinstance(spikes, Events) else spikes
    if dense is not None and dense.requires_grad and dense.dtype != weight.dtype:
        raise TypeError(f"spikes ({dense.dtype}) must have weight's dtype ({weight.dtype}) to get a gradient")
    return _EventLinear.apply(dense, events.offsets, events.indices, weight, bias, events.shape)


def _fake_spikes_to_events(spikes, check_binary):
    nnz = torch.library.get_ctx().new_dynamic_size()
    rows = spikes.shape[:-1].numel()
    return (spikes.new_empty((rows + 1,), dtype=torch.int64), spikes.new_empty((nnz,), dtype=torch.int32))


def _fake_spikes_to_bits(spikes, check_binary):
    return spikes.new_empty((*spikes.shape[:-1], (spikes.shape[-1] + 7) // 8), dtype=torch.uint8)


def _fake_bits_to_spikes(packed, n, dtype):
    return packed.new_empty((*packed.shape[:-1], n), dtype=dtype)


def _fake_lif_events(x, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param,
                     save_membrane):
    nnz = torch.library.get_ctx().new_dynamic_size()
    acc = _args.acc_dtype(x.dtype)
    rows = x.shape[0] * x.shape[1]
    return (x.new_empty(x.shape), x.new_empty(x.shape if save_membrane else (0,), dtype=acc),
            x.new_empty(x.shape[1:], dtype=acc), x.new_empty((rows + 1,), dtype=torch.int64),
            x.new_empty((nnz,), dtype=torch.int32))


def _fake_recurrent_lif_events(x, V, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate,
                               surrogate_param, detach_recurrent, save_membrane):
    return _fake_lif_events(x, beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, surrogate_param,
                            save_membrane)


def _fake_event_linear_lif(offsets, indices, weight_t, bias, T, B, beta, alpha, threshold, u0, reset, v_reset,
                           detach_reset, surrogate, surrogate_param, save_membrane):
    return _fake_lif_events(weight_t.new_empty((T, B, weight_t.shape[1])), beta, alpha, threshold, u0, reset,
                            v_reset, detach_reset, surrogate, surrogate_param, save_membrane)


def _fake_event_linear(offsets, indices, weight_t, bias):
    return weight_t.new_empty((offsets.shape[0] - 1, weight_t.shape[1]))


def _fake_event_linear_weight_grad(offsets, indices, grad_y, in_features):
    return grad_y.new_empty((in_features, grad_y.shape[1]))


FAKES = {
    "spikes_to_events": _fake_spikes_to_events,
    "spikes_to_bits": _fake_spikes_to_bits,
    "bits_to_spikes": _fake_bits_to_spikes,
    "event_linear": _fake_event_linear,
    "event_linear_weight_grad": _fake_event_linear_weight_grad,
    "lif_events": _fake_lif_events,
    "recurrent_lif_events": _fake_recurrent_lif_events,
    "event_linear_lif": _fake_event_linear_lif,
}

if _library.LOADED:
    for _name, _fake in FAKES.items():
        torch.library.register_fake(f"snnfast::{_name}")(_fake)
