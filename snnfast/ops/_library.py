"""Loads the compiled ops: the extension built by setup.py, or a library built with CMake
whose path is in SNNFAST_LIBRARY."""
from __future__ import annotations

import os

import torch


def _load() -> bool:
    try:
        from .. import _C  # noqa: F401  (its static initialisers register torch.ops.snnfast)

        return True
    except ImportError:
        path = os.environ.get("SNNFAST_LIBRARY")
        if path:
            torch.ops.load_library(path)
            return True
    return False


LOADED = _load()


def _devices(op: str) -> frozenset:
    if not LOADED:
        return frozenset()
    return frozenset(
        device
        for device in ("cpu", "cuda")
        if torch._C._dispatch_has_kernel_for_dispatch_key(op, device.upper())
    )


# The device types that have a compiled kernel for the fused LIF op.
LIF_DEVICES = _devices("snnfast::lif")

# The device types that have a compiled kernel for the fused recurrent LIF op.
RECURRENT_LIF_DEVICES = _devices("snnfast::recurrent_lif")

# The device types that have a compiled kernel for the event ops (snnfast.ops.event_linear).
EVENT_DEVICES = _devices("snnfast::event_linear")

# The device types that have a compiled event-driven Conv2d (snnfast.ops.event_conv).
EVENT_CONV_DEVICES = _devices("snnfast::event_conv2d")

# The device types whose fused LIF op also emits its spikes as events (snnfast::lif_events).
LIF_EVENTS_DEVICES = _devices("snnfast::lif_events")

# The device types whose fused recurrent LIF op also returns its spikes as events
# (snnfast::recurrent_lif_events: emitted by the CPU's steps, converted in the glue on CUDA).
RECURRENT_LIF_EVENTS_DEVICES = _devices("snnfast::recurrent_lif_events")

# The device types with a compiled packing of spikes as bits (snnfast::spikes_to_bits).
BITS_DEVICES = _devices("snnfast::spikes_to_bits")
