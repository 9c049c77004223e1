#!/usr/bin/env bash
# Builds the ops with CMake (the CPU kernels; the CUDA ones too where CMake finds a CUDA
# compiler and Torch has CUDA), so that CMakeLists.txt cannot drift from setup.py unseen, and
# runs the library once without the Python package. Run from anywhere: bash .ci/cmake_build.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
prefix="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
mkdir -p build
cmake -S . -B build/cmake -DCMAKE_PREFIX_PATH="$prefix" >build/cmake.log 2>&1 || { cat build/cmake.log; exit 1; }
cmake --build build/cmake -j "${MAX_JOBS:-2}"
SNNFAST_LIBRARY=build/cmake/libsnnfast_ops.so "$PYTHON" - <<'PY'
import os
import torch

torch.ops.load_library(os.environ["SNNFAST_LIBRARY"])
x = torch.randn(4, 2, 3)
params = [torch.full((3,), v) for v in (0.9, 1.0, 0.5)]
spikes, membrane, u_last = torch.ops.snnfast.lif(x, *params, None, "hard", 0.0, False, "rectangle", 1.0)
# h_0 = alpha * x_0 from u_0 = 0, and the spikes are h >= threshold.
assert torch.equal(membrane[0], x[0]) and torch.equal(spikes, (membrane >= 0.5).float())
print("cmake_build: libsnnfast_ops.so runs snnfast::lif")
PY
