"""Builds snnfast._C: the CPU kernels everywhere, the CUDA kernels where torch has CUDA and
nvcc is found. Build with `pip install --no-build-isolation .` so it uses the installed torch."""
import glob
import os

import torch
from setuptools import find_packages, setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

HERE = os.path.dirname(os.path.abspath(__file__))


def with_cuda() -> bool:
    if os.environ.get("SNNFAST_NO_CUDA") == "1":
        return False
    return torch.version.cuda is not None and CUDA_HOME is not None


def cpu_flags() -> list:
    """SIMD flags for the CPU kernels, for the machine that builds them (the build is from
    source): AVX2 + FMA + F16C where this CPU has them, and 512-bit AVX-512 vectors where it
    has those (the surrogate's exp in the backward pass is compute-bound: 1.4x faster
    fwd+bwd with the sigmoid surrogate on a Zen 5 EPYC, docs/benchmarks.md);
    SNNFAST_CPU_FLAGS overrides."""
    if "SNNFAST_CPU_FLAGS" in os.environ:
        return os.environ["SNNFAST_CPU_FLAGS"].split()
    capability = torch.backends.cpu.get_cpu_capability()
    flags = ["-mavx2", "-mfma", "-mf16c"] if capability in ("AVX2", "AVX512") else []
    if capability == "AVX512":
        flags += ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mprefer-vector-width=512"]
    return flags


def compile_flags(name: str) -> list:
    """The flags on the `name:` line of csrc/compile_flags.txt (the one list of them, which
    CMake and the CI scripts read too; the file says why each is there)."""
    with open(os.path.join(HERE, "csrc", "compile_flags.txt")) as f:
        for line in f:
            key, _, flags = line.partition(":")
            if not line.startswith("#") and key.strip() == name:
                return flags.split()
    raise KeyError(f"csrc/compile_flags.txt has no {name}: line")


def extension():
    cpp_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    cxx_flags = compile_flags("cxx") + ["-DPy_LIMITED_API=0x03090000"] + cpu_flags()
    include_dirs = [os.path.join(HERE, "csrc"), os.path.join(HERE, "csrc", "include")]
    if with_cuda():
        return CUDAExtension(
            "snnfast._C",
            cpp_sources + sorted(glob.glob("csrc/cuda/*.cu")),
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags, "nvcc": compile_flags("nvcc")},
            extra_link_args=["-fopenmp"],
            py_limited_api=True,
        )
    return CppExtension(
        "snnfast._C",
        cpp_sources,
        include_dirs=include_dirs,
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
        py_limited_api=True,
    )


setup(
    name="snnfast",
    version="0.1.0",
    description="Fused spiking-neuron (LIF) kernels for PyTorch",
    packages=find_packages(include=["snnfast", "snnfast.*"]),
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension},
    options={"bdist_wheel": {"py_limited_api": "cp39"}},
    python_requires=">=3.9",
    install_requires=["torch>=2.4", "numpy", "tqdm"],
    entry_points={"console_scripts": ["snnfast=snnfast.__main__:main"]},
)
