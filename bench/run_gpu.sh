#!/usr/bin/env bash
# Everything a first run on a lent GPU does, in ONE device call of at most 600 s, build
# included; from the repository root:
#   bash bench/run_gpu.sh                         # on the GPU machine
#   SNNFAST_GPU_DRY_RUN=1 bash bench/run_gpu.sh   # anywhere: the stages' plumbing on the CPU
#
# Stages, each under `timeout` within one time budget (SNNFAST_GPU_BUDGET_S, default 570 s,
# under the device call's 600 s):
#   setup      the machine (GPU, torch, nvcc, compute-sanitizer); wheels carried in .whl/
#              (SpikingJelly, say) installed with --no-deps into /tmp/site
#   build      python3 setup.py build_ext --inplace with the CUDA kernels, for the GPU found
#              (TORCH_CUDA_ARCH_LIST defaults to its compute capability, e.g. 9.0)
#   tests      the whole pytest suite, CUDA tests included (they run where a GPU is present)
#   memcheck   compute-sanitizer --tool memcheck on bench/sanitize_cuda.py (small shapes)
#   racecheck  compute-sanitizer --tool racecheck on the same workload
#   bench      bench/bench_cuda.py, every table written to $OUT as soon as it is measured,
#              stopped between rows by the time that is left
# then a one-screen summary (also in $OUT/summary.txt). Files in $OUT (the device tool's
# output folder; ./runs/gpu when unset), seven, under the tool's limit of eight:
#   summary.txt setup.log tests.log sanitizer.log bench.log benchmarks_cuda.md benchmarks_cuda.jsonl
# BENCH_ARGS adds options to bench_cuda.py (e.g. "--sections e"). Exit status: 0 when every
# stage that ran passed (a benchmark stopped between rows by the budget passes); 2 without a GPU.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
out="${OUT:-$PWD/runs/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
budget="${SNNFAST_GPU_BUDGET_S:-570}"
dry_run="${SNNFAST_GPU_DRY_RUN:-0}"
summary_reserve=10  # seconds kept for the summary after the last stage
started=$SECONDS
: >"$out/setup.log"

left() { echo $((budget - (SECONDS - started))); }

declare -a stage_lines=()
failed=0

# run_stage NAME CAP LOG COMMAND...: runs COMMAND under timeout for CAP seconds or what is
# left of the budget (less the reserve of the stages after it, RESERVE_AFTER), output
# appended to LOG; records "pass", "FAIL (status N)", "TIMEOUT" or "skipped" and the time.
run_stage() {
  local name=$1 cap=$2 log=$3
  shift 3
  local limit=$(($(left) - ${RESERVE_AFTER:-0} - summary_reserve))
  ((limit > cap)) && limit=$cap
  if ((limit < 5)); then
    stage_lines+=("$(printf '%-10s skipped: no time left in the %s s budget' "$name" "$budget")")
    return 0
  fi
  echo "== $name (limit ${limit} s): $*" | tee -a "$log"
  local t0=$SECONDS status
  timeout -k 10 "$limit" "$@" >>"$log" 2>&1
  status=$?
  local took=$((SECONDS - t0)) verdict
  case $status in
    0) verdict="pass" ;;
    124 | 137) verdict="TIMEOUT after ${limit} s" ;;
    *) verdict="FAIL (status $status)" ;;
  esac
  [ "$status" -ne 0 ] && failed=1
  stage_lines+=("$(printf '%-10s %-24s %4d s   %s' "$name" "$verdict" "$took" "${log#"$out"/}")")
  echo "== $name: $verdict in ${took} s" | tee -a "$log"
  return "$status"
}

skip_stage() {
  stage_lines+=("$(printf '%-10s skipped: %s' "$1" "$2")")
}

# ---- setup -----------------------------------------------------------------------------
gpu_caps=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu_caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | sort -u | paste -sd ';' -)
fi
if [ -z "$gpu_caps" ] && [ "$dry_run" != 1 ]; then
  echo "run_gpu.sh: no GPU found (nvidia-smi is missing or lists none). This script is for a"
  echo "machine with an NVIDIA GPU; to check its stages here, run SNNFAST_GPU_DRY_RUN=1 bash bench/run_gpu.sh"
  exit 2
fi
sanitizer=$(command -v compute-sanitizer || true)
for dir in "${CUDA_HOME:-}" /usr/local/cuda /opt/cuda; do
  if [ -z "$sanitizer" ] && [ -n "$dir" ] && [ -x "$dir/bin/compute-sanitizer" ]; then
    sanitizer="$dir/bin/compute-sanitizer"
  fi
done
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$gpu_caps}"
{
  date -u
  echo "budget ${budget} s; dry run: $dry_run; TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-}; $(nproc) CPUs"
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>&1 || true
  python3 -c "import sys, torch; from torch.utils.cpp_extension import CUDA_HOME; print('python', sys.version.split()[0], '| torch', torch.__version__, '| torch CUDA', torch.version.cuda, '| CUDA_HOME', CUDA_HOME, '| GPU visible', torch.cuda.is_available())"
  nvcc --version 2>&1 | tail -n 1 || true
  echo "compute-sanitizer: ${sanitizer:-not found}"
} >>"$out/setup.log" 2>&1
cat "$out/setup.log"

wheels=(.whl/*.whl)
if [ -e "${wheels[0]}" ]; then
  if python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "${wheels[@]}" >>"$out/setup.log" 2>&1; then
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
    echo "wheels: installed ${#wheels[@]} from .whl/ into /tmp/site" | tee -a "$out/setup.log"
  else
    echo "wheels: install FAILED (see setup.log); going on without them" | tee -a "$out/setup.log"
  fi
fi

# ---- build -----------------------------------------------------------------------------
# setup.py builds the CUDA kernels only where torch has CUDA and CUDA_HOME (nvcc) is found;
# it would otherwise build the CPU kernels alone, silently: check both before and after.
# The stage runs `build` under timeout, in a child bash (export -f).
# shellcheck disable=SC2329
check_cuda_build() {
  python3 - <<'PY'
import sys
import torch
from torch.utils.cpp_extension import CUDA_HOME
if torch.version.cuda is None or CUDA_HOME is None:
    sys.exit(f"cannot build the CUDA kernels: torch.version.cuda = {torch.version.cuda}, "
             f"CUDA_HOME = {CUDA_HOME} (set CUDA_HOME to the CUDA toolkit with nvcc)")
PY
}
# shellcheck disable=SC2329
check_cuda_kernels() {
  python3 -c "from snnfast import _library as L; import sys; sys.exit(0 if 'cuda' in L.LIF_DEVICES and 'cuda' in L.RECURRENT_LIF_DEVICES else 'snnfast._C was built without its CUDA kernels: %s, %s' % (sorted(L.LIF_DEVICES), sorted(L.RECURRENT_LIF_DEVICES)))"
}
# shellcheck disable=SC2329
build() {
  check_cuda_build || return 1
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" python3 setup.py build_ext --inplace || return 1
  check_cuda_kernels
}

built=0
if [ "$dry_run" = 1 ]; then
  skip_stage build "dry run"
else
  export -f build check_cuda_build check_cuda_kernels
  RESERVE_AFTER=200 run_stage build 330 "$out/setup.log" bash -c build && built=1
  [ "$built" = 1 ] || tail -n 30 "$out/setup.log"
fi

# ---- tests, sanitizers, benchmark ------------------------------------------------------
if [ "$dry_run" = 1 ]; then
  skip_stage tests "dry run"
  RESERVE_AFTER=30 run_stage workload 60 "$out/sanitizer.log" python3 bench/sanitize_cuda.py --device cpu
  skip_stage memcheck "dry run (the workload above ran on the CPU instead)"
  skip_stage racecheck "dry run"
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  run_stage bench 120 "$out/bench.log" python3 bench/bench_cuda.py --dry-run \
    --out "$out/benchmarks_cuda.md" --time-budget $(($(left) - summary_reserve - 30)) ${BENCH_ARGS:-}
elif [ "$built" = 1 ]; then
  RESERVE_AFTER=150 run_stage tests 160 "$out/tests.log" \
    python3 -m pytest -q -rfEs -p no:cacheprovider --durations=10 tests
  if [ -n "$sanitizer" ]; then
    for tool in memcheck racecheck; do
      # Without torch's caching allocator every tensor is its own allocation, so that
      # memcheck sees an access past a tensor's end.
      PYTORCH_NO_CUDA_MEMORY_CACHING=1 RESERVE_AFTER=90 run_stage "$tool" 75 "$out/sanitizer.log" \
        "$sanitizer" --tool "$tool" --error-exitcode 1 python3 bench/sanitize_cuda.py
    done
  else
    skip_stage memcheck "compute-sanitizer not found"
    skip_stage racecheck "compute-sanitizer not found"
  fi
  # bench_cuda.py stops between rows 30 s before the stage's limit (its imports and the row
  # in flight); the limit kills it if not, and the tables written so far stay.
  # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
  run_stage bench 600 "$out/bench.log" python3 bench/bench_cuda.py \
    --out "$out/benchmarks_cuda.md" --time-budget $(($(left) - summary_reserve - 30)) ${BENCH_ARGS:-}
else
  skip_stage tests "the build failed"
  skip_stage memcheck "the build failed"
  skip_stage racecheck "the build failed"
  skip_stage bench "the build failed"
fi

# ---- summary ---------------------------------------------------------------------------
{
  echo "==== snnfast GPU run: $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - started)) s of ${budget} s ===="
  nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | sed 's/^/GPU: /'
  printf '%s\n' "${stage_lines[@]}"
  if [ -s "$out/tests.log" ]; then
    echo "tests: $(grep -E '^(=+ )?[0-9]+ (passed|failed|error)' "$out/tests.log" | tail -n 1)" \
      "($(grep -c '^SKIPPED' "$out/tests.log") skip reasons listed in tests.log)"
    grep -E '^(FAILED|ERROR) ' "$out/tests.log" | head -n 8
  fi
  if [ -s "$out/sanitizer.log" ]; then
    awk '/^== (memcheck|racecheck) \(limit/ {tool = $2}
         /ERROR SUMMARY|RACECHECK SUMMARY/ {sub(/^=+ */, ""); print tool ": " $0}' "$out/sanitizer.log"
  fi
  [ -s "$out/bench.log" ] && grep -E '^section \(' "$out/bench.log"
  echo "files in ${out}: $(cd "$out" && printf '%s ' *)"
  [ "$failed" = 0 ] && echo "RESULT: every stage that ran passed" || echo "RESULT: FAILED (see the stages above)"
} | tee "$out/summary.txt"
exit "$failed"
