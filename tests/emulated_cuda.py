"""The emulated CUDA device of the tests: snnfast's CUDA kernels (csrc/cuda/*.cuh) built for
the host (csrc/emulated/) into an extension of their own, torch.ops.snnfast_emulated, through
the same glue as the real ones, so that the CUDA test matrix runs on every CI run, GPU or not.

Built on first use into build/emulated_cuda (a minute or two; later runs reuse it), never by
setup.py: the product's build and import do not pay for it. The emulated device's tensors are
CPU tensors; inside `CudaDevice.kernels()` a dispatch mode sends every call of a snnfast op
to its emulated twin, so that snnfast.lif, its autograd and torch.ops.snnfast.* run the
CUDA kernels unchanged.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib

import torch
from torch.utils._python_dispatch import TorchDispatchMode

ROOT = pathlib.Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"

# An H100's multiprocessor count and opt-in shared memory per block, so that the recurrent
# tests take the same path (persistent or per-step) here as on the GPU they were sized for.
H100 = dict(multiprocessors=132, shared_memory_per_block=232448)


def compile_flags(name: str) -> list:
    """The `name:` line of csrc/compile_flags.txt, which setup.py and CMake read too."""
    for line in (CSRC / "compile_flags.txt").read_text().splitlines():
        key, _, flags = line.partition(":")
        if not line.startswith("#") and key.strip() == name:
            return flags.split()
    raise KeyError(f"csrc/compile_flags.txt has no {name}: line")


_built = False


def build() -> None:
    """Builds (once per process; ninja skips what is up to date) and loads the extension."""
    global _built
    if _built:
        return
    from torch.utils import cpp_extension

    directory = ROOT / "build" / "emulated_cuda"
    directory.mkdir(parents=True, exist_ok=True)
    sources = [CSRC / "lif.cpp", CSRC / "recurrent_lif.cpp", CSRC / "neuron_glue.cpp", CSRC / "output_cache.cpp",
               CSRC / "event_linear.cpp",
               *sorted((CSRC / "emulated").glob("*.cpp"))]
    os.environ.setdefault("MAX_JOBS", "2")
    # The product's flags (the same rounding as the CPU kernels), at -O1: the emulated
    # kernels do little work, and the build is on every fresh CI run.
    flags = compile_flags("cxx") + ["-O1", "-DSNNFAST_EMULATED", "-DSNNFAST_OPS=snnfast_emulated"]
    cpp_extension.load(
        name="snnfast_emulated",
        sources=[str(s) for s in sources],
        extra_cflags=flags,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(CSRC), str(CSRC / "include")],
        build_directory=str(directory),
        is_python_module=False,
    )
    _register_fakes()
    _built = True


def _register_fakes() -> None:
    # The twins' meta kernels are snnfast's, for opcheck and torch.compile under the mode.
    from snnfast.ops import _fused, event_linear

    for name in ("lif", "recurrent_lif"):
        _fused.register_fakes("snnfast_emulated", name)
    for name, fake in event_linear.FAKES.items():
        torch.library.register_fake(f"snnfast_emulated::{name}")(fake)


def set_device(multiprocessors: int, shared_memory_per_block: int) -> None:
    """What the launch code of the emulated kernels sees of the device."""
    build()
    torch.ops.snnfast_emulated.set_device(multiprocessors, shared_memory_per_block)


def launches() -> tuple:
    """(launches of kernels whose threads run independently, of kernels that meet at
    __syncthreads, the recurrent persistent kernels) on the emulated device so far."""
    build()
    return tuple(torch.ops.snnfast_emulated.launches())


class _Emulated(TorchDispatchMode):
    """Runs every snnfast op on the emulated device instead of the CPU kernels."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "snnfast":
            func = getattr(getattr(torch.ops.snnfast_emulated, func._opname), func._overloadname)
        return func(*args, **(kwargs or {}))


@dataclasses.dataclass(frozen=True)
class CudaDevice:
    """A device the CUDA kernels run on: a real GPU ("cuda") or the emulated one ("emulated").
    `type` is where its tensors live; its kernels run inside `kernels()`."""

    name: str

    @property
    def type(self) -> str:
        return "cuda" if self.name == "cuda" else "cpu"

    @property
    def emulated(self) -> bool:
        return self.name == "emulated"

    def kernels(self):
        return _Emulated() if self.emulated else contextlib.nullcontext()

    def __str__(self) -> str:
        return self.name


def cuda_devices() -> list:
    """The emulated device always, and a real GPU where there is one."""
    return [CudaDevice("emulated")] + ([CudaDevice("cuda")] if torch.cuda.is_available() else [])


def prepare(device: CudaDevice) -> CudaDevice:
    """For a test's fixture: builds the emulated device, resets it to the H100-like default."""
    if device.emulated:
        set_device(**H100)
    return device
