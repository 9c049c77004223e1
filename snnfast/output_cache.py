"""The bounded cache that keeps the fused ops' large CPU outputs warm between calls.

With glibc's defaults every tensor above 32 MiB is a fresh mapping whose pages the kernel
zeroes on first touch; at T = 1000 the fused op's outputs are hundreds of MB, and a training
loop would pay that on every call (docs/benchmarks.md#allocator). snnfast therefore keeps the
storage of its own freed outputs of 4 MiB or more and reuses it for the next output of the same
size. It touches nothing else: PyTorch's allocator and the process's malloc stay as they are.

The free blocks it holds stay under a limit: `SNNFAST_CPU_CACHE_MB` (read at the first large
output; default min(4 GiB, RAM / 8); 0 turns the cache off) or `set_limit()`. A free block
unused for 10 s returns to the system at the next cache operation; `release()` returns them all.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .ops import _library


@dataclass(frozen=True)
class Stats:
    limit_bytes: int   # the most the free blocks may hold
    cached_bytes: int  # held in free blocks now, ready for reuse
    used_bytes: int    # in blocks that back live tensors
    hits: int          # outputs served from a free block
    misses: int        # outputs that needed a fresh mapping


def _require_library() -> None:
    if not _library.LOADED:
        raise RuntimeError("snnfast.output_cache: the compiled extension is not loaded (see README.md)")


def stats() -> Stats:
    """The cache's limit, what it holds and how often it was hit."""
    _require_library()
    return Stats(*torch.ops.snnfast.output_cache_stats())


def release() -> None:
    """Returns every free block to the system (the limit stays)."""
    _require_library()
    torch.ops.snnfast.output_cache_release()


def set_limit(nbytes: int) -> None:
    """Caps the free blocks at `nbytes` (0: cache nothing from now on) and trims them to it."""
    _require_library()
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise ValueError(f"snnfast.output_cache.set_limit: nbytes must be an int >= 0, got {nbytes!r}")
    torch.ops.snnfast.output_cache_set_limit(nbytes)
