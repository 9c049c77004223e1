#!/usr/bin/env bash
# Installs snnfast and what it needs into the current Python, building the extension against
# the torch that is already there. An installed torch is never replaced. Where there is none,
# torch==2.13.0 is installed from pip's index: on Linux from PyPI that is the CUDA build
# (a 526 MB wheel plus the CUDA libraries). For the CPU build, from PyTorch's CPU index:
#   bash install.sh --cpu-torch      (or TORCH_INDEX_URL=<an index of torch wheels> bash install.sh)
#
#   bash install.sh          the package, its runtime needs and the peers for the benchmarks
#   bash install.sh --test   the same, plus what the tests need
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
CPU_TORCH_INDEX=https://download.pytorch.org/whl/cpu
TEST=0
for arg in "$@"; do
  case "$arg" in
    --test) TEST=1 ;;
    --cpu-torch) TORCH_INDEX_URL=$CPU_TORCH_INDEX ;;
    *) echo "install.sh: unknown option $arg (options: --test, --cpu-torch)" >&2; exit 2 ;;
  esac
done
# The peers and tonic are installed with --no-deps (their own requirements would pull a CUDA
# torch, torchvision and torchaudio over the installed torch), so pip's check finds
# requirements of theirs missing on purpose (tests/check_imports.py lists them, with why) and
# would print a red "ERROR: pip's dependency resolver ..." on every install after them (and
# on every one when install.sh runs again). --no-warn-conflicts: no such check;
# tests/check_imports.py, at the end, checks what snnfast needs instead.
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check --no-warn-conflicts -q "$@"; }

if "$PYTHON" -c "import torch" 2>/dev/null; then
  echo "install.sh: using the installed torch $("$PYTHON" -c "import torch; print(torch.__version__)")"
elif [[ -n "${TORCH_INDEX_URL:-}" ]]; then
  echo "install.sh: installing torch==2.13.0 from $TORCH_INDEX_URL"
  pip_install torch==2.13.0 --index-url "$TORCH_INDEX_URL"
else
  echo "install.sh: installing torch==2.13.0 from pip's index (from PyPI on Linux: the CUDA build; --cpu-torch for the CPU one)"
  pip_install torch==2.13.0
  echo "install.sh: installed torch $("$PYTHON" -c "import torch; print(torch.__version__)")"
fi
# Build and runtime needs that do not depend on torch.
pip_install "setuptools>=64" wheel ninja numpy tqdm matplotlib packaging
# Peers for the benchmarks and the converter, without their requirements (see above); loguru
# is the one that SpikingJelly's modules import.
pip_install --no-deps spikingjelly==2.0.0 snntorch==1.0.0
# NIR, for snnfast.to_nir / from_nir and snnTorch's export_to_nir / import_from_nir. nir needs
# only numpy and h5py; nirtorch (used by snnTorch's NIR functions) requires torch: --no-deps.
pip_install --no-deps nir==1.0.8 nirtorch==2.6
pip_install h5py
pip_install loguru
# The event-based datasets read their files through tonic (see the file for why --no-deps).
pip_install --no-deps -r requirements-data.txt
# The papers' studies (snnfast study losses / dalif-ablation --quick) train on scikit-learn's
# bundled digits. With its own requirements (joblib, and joblib's cloudpickle, threadpoolctl,
# narwhals): none of them depends on torch.
pip_install scikit-learn==1.9.1
if [[ "$TEST" == 1 ]]; then
  pip_install pytest
fi
# --no-build-isolation: build against the installed torch, not a fresh one in an isolated env.
MAX_JOBS=${MAX_JOBS:-2} pip_install --no-build-isolation -e .
# Every package installed with --no-deps imports and has what it requires (else: which).
"$PYTHON" tests/check_imports.py
echo "install.sh: done (python3 -m pip check lists the peers' requirements left out on purpose)"
