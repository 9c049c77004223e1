"""Event streams to frames: the binning every event-based loader shares.

Events are numpy structured arrays with fields ``t`` (microseconds), ``x``, ``p`` and, for
cameras, ``y`` (tonic's layout). Frames are event counts, one channel per polarity:
``[T, P, H, W]`` for cameras, ``[T, N]`` for a cochlea (SHD, SSC).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def frame_index_by_window(t: np.ndarray, window_us: float) -> np.ndarray:
    """Frame of each event when frames are consecutive windows of ``window_us`` from t = 0.

    Counting from 0 (not from the first event) keeps a recording's frames aligned with its
    clock, so the same window length gives the same grid on every sample.
    """
    return (np.asarray(t, dtype=np.int64) // int(window_us)).astype(np.int64)


def frame_index_by_count(n_events: int, n_frames: int, split_by: str, t=None) -> np.ndarray:
    """Frame of each event for a fixed number of frames.

    ``split_by="number"``: equal event counts per frame (frames differ by at most one event);
    ``split_by="time"``: equal durations between the first and the last event.
    """
    if split_by == "number":
        return (np.arange(n_events, dtype=np.int64) * n_frames) // max(n_events, 1)
    if split_by == "time":
        if n_events == 0:
            return np.zeros(0, dtype=np.int64)
        t = np.asarray(t, dtype=np.int64)
        t0, duration = t.min(), int(t.max() - t.min()) + 1
        return ((t - t0) * n_frames) // duration
    raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")


def accumulate(
    frame: np.ndarray, shape: tuple, *, x, y=None, p=None, n_frames: int | None = None
) -> np.ndarray:
    """Counts events into ``[n_frames, *shape]`` (shape is (P, H, W) or (N,)).

    Events whose frame index or address falls outside the array are dropped, so a fixed
    ``n_frames`` crops a long recording and a fixed sensor size crops stray addresses.
    """
    frame = np.asarray(frame, dtype=np.int64)
    if n_frames is None:
        n_frames = int(frame.max()) + 1 if frame.size else 1
    index = [frame, np.asarray(x, dtype=np.int64)]
    if len(shape) == 3:
        index = [frame, np.asarray(p, dtype=np.int64), np.asarray(y, dtype=np.int64), index[1]]
    keep = frame >= 0
    for axis, size in zip(index, (n_frames, *shape)):
        keep &= (axis >= 0) & (axis < size)
    frames = np.zeros((n_frames, *shape), dtype=np.float32)
    np.add.at(frames, tuple(axis[keep] for axis in index), 1.0)
    return frames


def resize(frames: torch.Tensor, size: int | tuple | None) -> torch.Tensor:
    """Resizes [T, P, H, W] frames by area averaging (an average pool for integer factors)."""
    if size is None:
        return frames
    return F.interpolate(frames, size=size, mode="area")
