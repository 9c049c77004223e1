"""Event-driven Conv2d: F.conv2d of binary spikes computed on the spikes that fired only.

The events are snnfast.ops.event_linear's format over samples: row m is one sample
[in_channels, height, width] of spikes [N, in_channels, height, width], its indices the
flattened c * height * width + y * width + x of its spikes. The ops run in C++ on the CPU
(csrc/event_conv.h): event_conv2d scatters each event's weight vectors weight_t[c, ky, kx, :]
(the weight permuted to [in_channels, kH, kW, out_channels]) into the channels-last output
[N, out_h, out_w, out_channels] at every output position it reaches, vectorised over the
output channels; event_conv2d_weight_grad gathers grad_y over the same events, summed by
fixed chunks of rows whose partials are added in order: deterministic whatever the threads.
Zero padding, dilation 1 and groups 1 only.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

from . import _library
from .event_linear import _DTYPES, _check_loaded, to_events

_NOT_BINARY = ("spikes_in must hold only 0 and 1 to be taken as events; pass check_binary=False to count "
               "every nonzero value as a spike, or use the dense convolution (EventConv2d(events=False))")


def _pair(value, name: str) -> Tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise ValueError(f"{name} must be an int or two ints, got {value!r}")
    return pair


def output_size(height: int, width: int, kernel_size: Sequence[int], stride: Sequence[int],
                padding: Sequence[int]) -> Tuple[int, int]:
    """(out_h, out_w) of F.conv2d with dilation 1."""
    return tuple((n + 2 * p - k) // s + 1 for n, k, s, p in zip((height, width), kernel_size, stride, padding))


class _EventConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes, offsets, indices, weight, bias, input_shape, stride, padding):
        ctx.set_materialize_grads(False)
        _, height, width = input_shape[1:]
        # [out, in_channels, kH, kW] -> [in_channels, kH, kW, out]: each tap's output channels
        # contiguous, the vector an event adds.
        weight_t = weight.permute(1, 2, 3, 0).contiguous()
        y = torch.ops.snnfast.event_conv2d(offsets, indices, weight_t, bias, height, width, stride, padding)
        ctx.save_for_backward(offsets, indices, weight)
        ctx.input_shape, ctx.stride, ctx.padding = input_shape, stride, padding
        ctx.has_bias = bias is not None
        # The [N, out_h, out_w, out] result as [N, out, out_h, out_w]: a channels-last view.
        return y.permute(0, 3, 1, 2)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y):
        if grad_y is None:
            return (None,) * 8
        offsets, indices, weight = ctx.saved_tensors
        need_spikes, _, _, need_weight, need_bias = ctx.needs_input_grad[:5]
        grad_spikes = grad_weight = grad_bias = None
        if need_spikes:  # dense: the layer below needs every element of it
            grad_spikes = torch.nn.grad.conv2d_input(ctx.input_shape, weight, grad_y, ctx.stride, ctx.padding)
        if need_weight:
            _, in_channels, height, width = ctx.input_shape
            grad_rows = grad_y.permute(0, 2, 3, 1).contiguous()  # no copy where grad_y is channels-last
            grad_weight_t = torch.ops.snnfast.event_conv2d_weight_grad(
                offsets, indices, grad_rows, in_channels, height, width, weight.shape[2:], ctx.stride, ctx.padding)
            grad_weight = grad_weight_t.permute(3, 0, 1, 2).contiguous()
        if need_bias and ctx.has_bias:
            grad_bias = grad_y.sum((0, 2, 3))
        return grad_spikes, None, None, grad_weight, grad_bias, None, None, None


def event_conv2d(spikes_in: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None, stride=1,
                 padding=0, *, check_binary: bool = True) -> torch.Tensor:
    """F.conv2d(spikes_in, weight, bias, stride, padding) computed on the events of the binary
    spikes_in [N, in_channels, height, width] (zero padding, dilation 1, groups 1).

    weight [out, in_channels, kH, kW] and bias [out]: float32 or float64, spikes in their
    dtype, on a device with the kernels (the CPU). check_binary=True raises a ValueError
    naming spikes_in where a value is neither 0 nor 1 (checked in the conversion's one pass);
    False counts every nonzero value as a spike. Returns [N, out, out_h, out_w], F.conv2d's
    values in a channels-last memory format. Gradients: of weight (over the events) and bias
    (grad_out summed); of spikes_in, where it requires grad, the dense conv2d_input of grad_out.
    """
    stride, padding = _pair(stride, "stride"), _pair(padding, "padding")
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4:
        raise ValueError(f"weight must be a 4-d tensor [out_channels, in_channels, kH, kW], got "
                         f"{getattr(weight, 'shape', type(weight).__name__)}")
    if weight.dtype not in _DTYPES:
        raise TypeError(f"weight must be float32 or float64 (the event kernels' dtypes), got {weight.dtype}")
    if not isinstance(spikes_in, torch.Tensor) or spikes_in.dim() != 4 or spikes_in.shape[1] != weight.shape[1]:
        raise ValueError(f"spikes_in must be [N, in_channels = {weight.shape[1]}, height, width], got "
                         f"{getattr(spikes_in, 'shape', type(spikes_in).__name__)}")
    if spikes_in.dtype != weight.dtype:
        raise TypeError(f"spikes_in ({spikes_in.dtype}) must have weight's dtype ({weight.dtype})")
    _check_loaded("event_conv2d")
    if spikes_in.device.type not in _library.EVENT_CONV_DEVICES:
        raise ValueError(f"snnfast.event_conv2d has kernels on {sorted(_library.EVENT_CONV_DEVICES)}, not on "
                         f"{spikes_in.device}; use torch.nn.functional.conv2d there")
    try:
        events = to_events(spikes_in.flatten(1), check_binary=check_binary)
    except RuntimeError as error:
        if "must hold only 0 and 1" in str(error):
            raise ValueError(_NOT_BINARY) from None
        raise
    return _EventConv2d.apply(spikes_in, events.offsets, events.indices, weight, bias, tuple(spikes_in.shape),
                              stride, padding)


def _fake_event_conv2d(offsets, indices, weight_t, bias, height, width, stride, padding):
    out_h, out_w = output_size(height, width, weight_t.shape[1:3], stride, padding)
    return weight_t.new_empty((offsets.shape[0] - 1, out_h, out_w, weight_t.shape[3]))


def _fake_event_conv2d_weight_grad(offsets, indices, grad_y, in_channels, height, width, kernel_size, stride,
                                   padding):
    return grad_y.new_empty((in_channels, *kernel_size, grad_y.shape[3]))


FAKES = {"event_conv2d": _fake_event_conv2d, "event_conv2d_weight_grad": _fake_event_conv2d_weight_grad}

if _library.LOADED:
    for _name, _fake in FAKES.items():
        torch.library.register_fake(f"snnfast::{_name}")(_fake)
