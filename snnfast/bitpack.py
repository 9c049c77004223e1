"""Spikes packed as bits: 8 spikes per byte along the last dimension, in plain torch ops so
that the same code runs on every device.

A spike tensor of shape [..., n] becomes a uint8 tensor of shape [..., ceil(n / 8)]; spike j
of a row is bit j % 8 (least significant first) of byte j // 8, and the padding bits of the
last byte are 0. Rows stay separate, so a slice along any leading dimension (a segment of
time steps) unpacks on its own.
"""
from __future__ import annotations

import torch

_BITS = 8


def _shifts(device) -> torch.Tensor:
    return torch.arange(_BITS, dtype=torch.uint8, device=device)


def packed_size(n: int) -> int:
    """Bytes that hold n spikes."""
    return (n + _BITS - 1) // _BITS


def pack_bits(spikes: torch.Tensor, *, require_binary: bool = False) -> torch.Tensor:
    """Packs a tensor of 0/1 values (any dtype, at least one dimension) along its last
    dimension. Every nonzero value becomes a 1 bit; require_binary=True raises a ValueError
    where a value is neither 0 nor 1 (one more comparison pass, and a device-to-host sync on
    an accelerator)."""
    if not isinstance(spikes, torch.Tensor):
        raise TypeError(f"spikes must be a torch.Tensor, got {type(spikes).__name__}")
    if spikes.dim() == 0:
        raise ValueError("spikes must have at least one dimension: bits are packed along the last one")
    nonzero = spikes != 0
    if require_binary and bool((nonzero & (spikes != 1)).any()):
        raise ValueError("spikes must hold only 0 and 1 to be packed as bits")
    n = spikes.shape[-1]
    padding = packed_size(n) * _BITS - n
    bits = nonzero.view(torch.uint8)
    if padding:
        bits = torch.nn.functional.pad(bits, (0, padding))
    bits = bits.reshape(*spikes.shape[:-1], packed_size(n), _BITS)
    return (bits << _shifts(spikes.device)).sum(-1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The [..., n] tensor of 0/1 values in dtype that pack_bits turned into packed."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed must be uint8 (from pack_bits), got {packed.dtype}")
    if packed.dim() == 0 or packed.shape[-1] != packed_size(n):
        raise ValueError(
            f"packed has shape {tuple(packed.shape)}, but {n} spikes per row take "
            f"{packed_size(n)} bytes in the last dimension"
        )
    bits = (packed.unsqueeze(-1) >> _shifts(packed.device)) & 1
    bits = bits.reshape(*packed.shape[:-1], packed.shape[-1] * _BITS)[..., :n]
    return bits.to(dtype)
