#!/usr/bin/env bash
# Builds the CUDA kernels for the emulated device (csrc/emulated/cuda_emulation.h) into a
# small host program (.ci/sanitize_kernels.cpp) with ASan + UBSan (every kernel) and with
# TSan (the recurrent persistent kernels, whose threads meet at __syncthreads, and the event
# kernels, whose warps meet at their votes), runs its matrix and fails on any report. A few
# minutes on two cores. Run from anywhere:
#   bash .ci/sanitize.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

# The torch headers, libc10 (TORCH_CHECK, ScalarType) and, for the event kernels' launch code
# (at::Tensor arguments, at::sum of the weight gradient's partials), libtorch_cpu, as the
# extension build uses them.
mapfile -t torch_flags < <("$PYTHON" - <<'PY'
import torch
from torch.utils import cpp_extension
for path in cpp_extension.include_paths():
    print(f"-isystem{path}")
print(f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}")
lib = cpp_extension.library_paths()[0]
print(f"-L{lib}")
print(f"-Wl,-rpath,{lib}")
PY
)
read -r -a cxx_flags <<<"$(sed -n 's/^cxx: //p' csrc/compile_flags.txt)"

out_dir="$(mktemp -d)"
trap 'rm -rf "$out_dir"' EXIT
common=("${cxx_flags[@]}" -O1 -g -fno-omit-frame-pointer -DSNNFAST_EMULATED -Icsrc -Icsrc/include)

build_and_run() {  # name, sanitizer flags, defines...
  local name=$1 sanitizers=$2
  shift 2
  local start=$SECONDS
  # shellcheck disable=SC2086
  g++ "${common[@]}" $sanitizers "$@" .ci/sanitize_kernels.cpp "${torch_flags[@]}" -lc10 -ltorch_cpu -lpthread \
    -o "$out_dir/$name"
  echo "sanitize: built $name in $((SECONDS - start)) s"
  start=$SECONDS
  "$out_dir/$name"
  echo "sanitize: ran $name in $((SECONDS - start)) s"
}

# halt_on_error and exitcode: any report fails the step.
export ASAN_OPTIONS=halt_on_error=1:detect_leaks=0:abort_on_error=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:exitcode=66
build_and_run asan_ubsan "-fsanitize=address,undefined -fno-sanitize-recover=all" \
  -DSANITIZE_LIF=1 -DSANITIZE_RECURRENT=1
build_and_run tsan "-fsanitize=thread" -DSANITIZE_RECURRENT=1
# The event kernels in builds of their own: they alone need the ATen headers, slow to compile.
build_and_run events_asan_ubsan "-fsanitize=address,undefined -fno-sanitize-recover=all" -DSANITIZE_EVENTS=1
build_and_run events_tsan "-fsanitize=thread" -DSANITIZE_EVENTS=1
echo "sanitize: clean"
