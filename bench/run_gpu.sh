#!/usr/bin/env bash
# Everything a session with a lent GPU runs, in one device call from the repository root:
#   bash bench/run_gpu.sh
# Builds the extension for this GPU, runs the CUDA tests and the CPU op tests, then the CUDA
# benchmark. Logs and the markdown report go to $OUT (the device tool's output folder) when
# set, else to ./gpu_run. Wheels carried in .whl/ (SpikingJelly, loguru) are installed
# first with --no-deps. Exits non-zero if the build or a test failed; the benchmark runs
# whatever the tests said. BENCH_ARGS passes options to the benchmark (e.g. "--sections ab")
# to split the work over several calls of the device's 10-minute limit; SKIP_TESTS=1 skips
# the tests in such a later call.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${OUT:-$PWD/gpu_run}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
  nvcc --version | tail -n 1 || true
} 2>&1 | tee "$out/env.txt"

if compgen -G ".whl/*.whl" >/dev/null; then
  pip install --no-deps .whl/*.whl 2>&1 | tail -n 3 | tee -a "$out/env.txt"
fi

start=$SECONDS
MAX_JOBS="${MAX_JOBS:-8}" python setup.py build_ext --inplace >"$out/build.txt" 2>&1
build_status=$?
echo "build: status $build_status, $((SECONDS - start)) s" | tee -a "$out/env.txt"
if [ "$build_status" -ne 0 ]; then
  tail -n 40 "$out/build.txt"
  exit "$build_status"
fi
python -c "from snnfast import _library; assert 'cuda' in _library.LIF_DEVICES, _library.LIF_DEVICES" || exit 1

test_status=0
if [ "${SKIP_TESTS:-0}" != 1 ]; then
  tests=(tests/test_lif_cuda.py)
  [ -f tests/test_lif.py ] && tests+=(tests/test_lif.py)
  python -m pytest -q -rs "${tests[@]}" 2>&1 | tee "$out/tests.txt"
  test_status=${PIPESTATUS[0]}
fi

# shellcheck disable=SC2086  # BENCH_ARGS is a list of options
python bench/bench_cuda.py --out "$out/benchmarks_cuda.md" ${BENCH_ARGS:-} 2>"$out/bench_progress.txt"
bench_status=$?
echo "tests: status $test_status; benchmark: status $bench_status"
[ "$test_status" -eq 0 ] && [ "$bench_status" -eq 0 ]
