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
# Spikes packed per block of rows.
_PACK_BLOCK = 1 << 22


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
    n = spikes.shape[-1]
    if n == 0:
        return torch.empty(spikes.shape, dtype=torch.uint8, device=spikes.device)
    rows = spikes.reshape(-1, n)
    packed = torch.empty((rows.shape[0], packed_size(n)), dtype=torch.uint8, device=spikes.device)
    # Blocks of rows, so that the temporaries (bytes, padded bytes, shifted bits) stay small
    # beside the input.
    block = max(1, _PACK_BLOCK // n)
    for r0 in range(0, rows.shape[0], block):
        packed[r0:r0 + block] = _pack_rows(rows[r0:r0 + block], require_binary)
    return packed.view(*spikes.shape[:-1], packed_size(n))


def _pack_rows(rows: torch.Tensor, require_binary: bool) -> torch.Tensor:
    if require_binary and not bool(((rows == 0) | (rows == 1)).all()):
        raise ValueError("spikes must hold only 0 and 1 to be packed as bits")
    n = rows.shape[-1]
    bits = (rows != 0).view(torch.uint8)
    padding = packed_size(n) * _BITS - n
    if padding:
        bits = torch.nn.functional.pad(bits, (0, padding))
    bits = bits.reshape(rows.shape[0], packed_size(n), _BITS)
    return (bits << _shifts(rows.device)).sum(-1, dtype=torch.uint8)


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
