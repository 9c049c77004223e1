"""Checkpoints that survive an interrupted write, and the random state that makes a resumed
run continue exactly."""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch


class RunError(ValueError):
    """A run that cannot continue as asked: its checkpoint is unreadable or does not fit."""


class CheckpointError(RunError):
    """A checkpoint file that cannot be read as one."""


def _temporary(path: Path, pid: int) -> Path:
    return path.with_name(f".{path.name}.tmp{pid}")


def remove_stale_temporaries(path) -> None:
    """Deletes the temporary files of ``path`` that killed processes left (a kill -9 in the
    middle of a write runs no cleanup); those of live processes are theirs."""
    path = Path(path)
    prefix = _temporary(path, 0).name[:-1]
    for tmp in path.parent.glob(prefix + "*"):
        pid = tmp.name[len(prefix):]
        if pid.isdigit() and (int(pid) == os.getpid() or not _alive(int(pid))):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def save_atomic(state: dict, path) -> None:
    """Writes ``state`` to a temporary file beside ``path``, syncs it, then renames it over
    ``path``: a crash at any point leaves either the previous checkpoint or the new one (and
    at worst a temporary file, which the next write removes)."""
    path = Path(path)
    remove_stale_temporaries(path)
    tmp = _temporary(path, os.getpid())
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def load(path, map_location="cpu") -> dict:
    """The state saved by save_atomic; a CheckpointError naming the file where it cannot be
    read as one (empty, truncated, another program's)."""
    try:
        # Everything saved is tensors and plain containers, so the safe loader reads it.
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:
        size = Path(path).stat().st_size if Path(path).is_file() else 0
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path} ({size} bytes) cannot be read as a checkpoint: {reason[:200]}. It is empty, truncated "
            "or not a checkpoint of snnfast; delete it (a run's previous checkpoint is not kept) and start "
            "over (--fresh), or resume from another folder (--out)") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, not a checkpoint of snnfast; delete "
                              "it and start over (--fresh)")
    return state


def rng_state(device: torch.device) -> dict:
    """torch (CPU and this process's CUDA device), numpy and python ``random`` states, as
    tensors and plain values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
