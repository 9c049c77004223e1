"""Measuring the memory of a training step: the bytes autograd saves for the backward pass,
and the peak memory of the process (CUDA allocator statistics, or peak RSS on the CPU)."""
from __future__ import annotations

import os
from typing import Dict, Iterable, Tuple

import torch


class SavedTensorBytes:
    """Context manager that counts the bytes autograd saves for the backward pass while it is
    open: every tensor that built-in ops, autograd.Functions (save_for_backward) and
    registered custom ops save passes through a saved_tensors_hooks pack hook. Each storage
    is counted once, at its full size (untyped_storage().nbytes()), whichever views of it are
    saved and however often. Tensors kept on ctx attributes instead of save_for_backward are
    not seen (snnfast keeps none there).

        with SavedTensorBytes() as saved:
            loss = model(x).sum()
        print(saved.total, saved.excluding(model.parameters()))
    """

    def __init__(self):
        self.storages: Dict[Tuple[str, int], int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    @staticmethod
    def _key(tensor: torch.Tensor) -> Tuple[str, int]:
        return (str(tensor.device), tensor.untyped_storage().data_ptr())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        # The pack hook returns the tensor itself: autograd keeps it alive until the backward
        # pass, so no storage counted here is freed (and its address reused) before then.
        self.storages.setdefault(self._key(tensor), tensor.untyped_storage().nbytes())
        return tensor

    @staticmethod
    def _unpack(tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def __enter__(self) -> "SavedTensorBytes":
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)

    @property
    def total(self) -> int:
        """Bytes of all the distinct storages saved."""
        return sum(self.storages.values())

    def excluding(self, tensors: Iterable[torch.Tensor]) -> int:
        """Bytes saved, leaving out the storages of `tensors` (a model's parameters, say)."""
        left_out = {self._key(t) for t in tensors}
        return sum(n for key, n in self.storages.items() if key not in left_out)


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak(device: torch.device) -> None:
    """Starts a new peak: the CUDA allocator's peak, or on the CPU the process's peak RSS
    (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")


def current_bytes(device: torch.device) -> int:
    """Bytes allocated by the CUDA allocator, or the process's RSS on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    return _proc_status_bytes("VmRSS")


def peak_bytes(device: torch.device) -> int:
    """The peak of current_bytes since the last reset_peak."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    return _proc_status_bytes("VmHWM")


def cpu_peak_supported() -> bool:
    """Whether this system lets reset_peak / peak_bytes measure the CPU (Linux /proc)."""
    return os.path.exists("/proc/self/clear_refs") and os.path.exists("/proc/self/status")
