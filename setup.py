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


def extension():
    cpp_sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -fno-trapping-math (as PyTorch itself is built) lets GCC if-convert the spike's
    # compare-and-select, so that the neuron loops vectorize; results are unchanged.
    cxx_flags = ["-O3", "-fopenmp", "-std=c++17", "-fno-trapping-math", "-fno-math-errno",
                 "-DPy_LIMITED_API=0x03090000"]
    include_dirs = [os.path.join(HERE, "csrc"), os.path.join(HERE, "csrc", "include")]
    if with_cuda():
        return CUDAExtension(
            "snnfast._C",
            cpp_sources + sorted(glob.glob("csrc/cuda/*.cu")),
            include_dirs=include_dirs,
            extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "--use_fast_math", "-std=c++17"]},
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
