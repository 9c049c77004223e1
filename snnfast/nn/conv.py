"""EventConv2d: nn.Conv2d that, on binary input spikes at a low rate, computes on the spikes
that fired only (snnfast.ops.event_conv)."""
from __future__ import annotations

import torch

from ..ops import _args, _library
from ..ops.event_conv import _NOT_BINARY, event_conv2d
from .linear import EVENT_CROSSOVER, _check_events_flag, _estimated_rate


class EventConv2d(torch.nn.Conv2d):
    """nn.Conv2d (the same arguments, initialisation, parameters and state_dict) over input
    spikes [*, in_channels, H, W] (e.g. [T, B, C, H, W], or the [T x B, C, H, W] that
    TimeDistributed passes), returning [*, out_channels, H_out, W_out] with nn.Conv2d's values.

    On the events of its binary input (snnfast.ops.event_conv.event_conv2d) each spike adds
    its out_channels-vectors of the weight at the output positions it reaches, so the work
    follows the spikes that fired instead of the H x W x in_channels inputs of every sample;
    the output then comes in a channels-last memory format (the same values and shape).

    events: "auto" takes the events where the kernels run (float32 or float64 on the CPU),
    the convolution is one they compute (dilation 1, groups 1, zero padding given as
    integers) and the input's spike rate, estimated from evenly spaced samples, is below
    snnfast.nn.linear.EVENT_CROSSOVER (LinearLIF's training crossover, 0.12: measured for
    these convolutions too, in training and inference, docs/benchmarks.md#event-conv2d), else
    computes as nn.Conv2d; where the conversion finds a value that is
    neither 0 nor 1 (an image rather than spikes) it computes as nn.Conv2d too. True forces
    the events (a ValueError naming events where they cannot run, and one naming spikes_in
    for a non-binary input with check_binary=True); False forces nn.Conv2d.
    check_binary=False counts every nonzero input as a spike.

    Gradients on the events: of the weight over the events (deterministic: summed by fixed
    chunks of samples, in order), of the bias grad_out summed, and of the input, where it
    requires grad, the dense transposed convolution of grad_out (the layer below needs
    every element of it). They equal nn.Conv2d's up to float rounding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None, *,
                 events="auto", check_binary: bool = True):
        _check_events_flag(events)
        _args.check_flag(check_binary, "check_binary")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device, dtype)
        self.events, self.check_binary = events, check_binary
        if events is True:
            self._check_supported()

    def unsupported(self):
        """What of this convolution the event kernels do not compute, or None."""
        if self.dilation != (1, 1):
            return f"dilation={self.dilation} (only 1)"
        if self.groups != 1:
            return f"groups={self.groups} (only 1)"
        if self.padding_mode != "zeros":
            return f"padding_mode={self.padding_mode!r} (only 'zeros')"
        if isinstance(self.padding, str):
            return f"padding={self.padding!r} (only integers)"
        return None

    def _check_supported(self) -> None:
        if self.unsupported() is not None:
            raise ValueError(f"events=True needs a convolution the event kernels compute; this one has "
                             f"{self.unsupported()}; use events=False or \"auto\"")

    def uses_events(self, spikes_in: torch.Tensor) -> bool:
        """Whether forward computes on the events of spikes_in [N, in_channels, H, W]."""
        runs = (spikes_in.device.type in _library.EVENT_CONV_DEVICES and spikes_in.dtype == self.weight.dtype
                and self.weight.dtype in (torch.float32, torch.float64))
        if self.events is True:
            self._check_supported()  # again: the attributes may have been set since
            if not runs:
                raise ValueError(
                    f"events=True needs float32 or float64 spikes_in and weight of one dtype on a device with "
                    f"the event kernels ({sorted(_library.EVENT_CONV_DEVICES) or 'none compiled'}), got "
                    f"spikes_in {spikes_in.dtype} on {spikes_in.device}, weight {self.weight.dtype}; "
                    f"use events=False")
            return True
        if self.events is False:
            return False
        _check_events_flag(self.events)
        return (runs and self.unsupported() is None and not torch.compiler.is_compiling()
                and _estimated_rate(spikes_in.flatten(1)) < EVENT_CROSSOVER)

    def forward(self, spikes_in: torch.Tensor) -> torch.Tensor:
        if spikes_in.dim() < 3:
            raise ValueError(f"spikes_in must be [*, in_channels, H, W], got shape {tuple(spikes_in.shape)}")
        lead = spikes_in.shape[:-3]
        x = spikes_in.flatten(0, -4) if spikes_in.dim() > 3 else spikes_in.unsqueeze(0)
        y = None
        if self.uses_events(x):
            try:
                y = event_conv2d(x, self.weight, self.bias, self.stride, self.padding, check_binary=self.check_binary)
            except ValueError as error:
                if self.events is True or str(error) != _NOT_BINARY:
                    raise
        if y is None:
            y = self._conv_forward(x, self.weight, self.bias)
        return y.reshape(*lead, *y.shape[1:])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, events={self.events!r}"
