#!/usr/bin/env bash
# Compiles every csrc/**/*.cu with nvcc (-c, no link) against the installed torch's headers,
# for sm_80 and sm_90, so that CUDA code that does not compile fails CI on machines without
# a GPU. Skips (exit 0) when nvcc is not on PATH. Run from anywhere: bash .ci/check_cuda.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v nvcc >/dev/null 2>&1; then
  echo "check_cuda: nvcc not on PATH; skipping the CUDA compile check"
  exit 0
fi

mapfile -t sources < <(find csrc -name '*.cu' | sort)
if [ "${#sources[@]}" -eq 0 ]; then
  echo "check_cuda: no .cu files under csrc/"
  exit 0
fi

# Include paths and defines as torch.utils.cpp_extension.BuildExtension passes them for the
# extension snnfast._C (setup.py), plus the Python headers.
torch_flags_text="$("${PYTHON:-python3}" - <<'PY'
import os, sysconfig
import torch
from torch.utils import cpp_extension

for path in cpp_extension.include_paths():
    print(f"-I{path}")
print(f"-I{sysconfig.get_paths()['include']}")
print(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
for flag in cpp_extension.COMMON_NVCC_FLAGS:
    print(flag)
# A CPU-only torch wheel ships c10/cuda but not the header CMake generates for it, whose one
# macro only matters for Windows DLL exports; CUDAMacros.h can skip it.
generated = os.path.join(cpp_extension.include_paths()[0], "c10", "cuda", "impl", "cuda_cmake_macros.h")
if not os.path.exists(generated):
    print("-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE")
PY
)"
mapfile -t torch_flags <<<"$torch_flags_text"

# The device flags of setup.py and CMake (csrc/compile_flags.txt), and both archs in one call.
read -r -a nvcc_flags <<<"$(sed -n 's/^nvcc: //p' csrc/compile_flags.txt)"
flags=(
  -c "${nvcc_flags[@]}"
  -Icsrc -Icsrc/include
  -DTORCH_EXTENSION_NAME=_C -DTORCH_API_INCLUDE_EXTENSION_H -DPy_LIMITED_API=0x03090000
  --compiler-options -fPIC
  -gencode arch=compute_80,code=sm_80
  -gencode arch=compute_90,code=sm_90
  --threads 2
)

out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT

echo "check_cuda: $(nvcc --version | tail -n 1)"
status=0
for src in "${sources[@]}"; do
  start=$SECONDS
  if nvcc "${flags[@]}" "${torch_flags[@]}" "$src" -o "$out_dir/$(basename "$src").o"; then
    echo "check_cuda: OK   $src (sm_80, sm_90; $((SECONDS - start)) s)"
  else
    echo "check_cuda: FAIL $src"
    status=1
  fi
done
exit "$status"
