#!/usr/bin/env bash
# Installs snnfast and what it needs into the current Python, building the extension against
# the torch that is already there. torch itself is installed only where none is (the CPU
# build, torch==2.13.0); an installed torch is never replaced.
#   bash install.sh          the package, its runtime needs and the peers for the benchmarks
#   bash install.sh --test   the same, plus what the tests need
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
pip_install() { "$PYTHON" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
  pip_install torch==2.13.0
fi
# Build and runtime needs that do not depend on torch.
pip_install "setuptools>=64" wheel ninja numpy tqdm matplotlib
# Peers for the benchmarks and the converter. --no-deps: their own requirements would pull a
# CUDA torch (and torchvision) over the installed one.
pip_install --no-deps spikingjelly==2.0.0 snntorch==1.0.0
pip_install loguru
# The event-based datasets read their files through tonic (see the file for why --no-deps).
pip_install --no-deps -r requirements-data.txt
# The papers' studies (snnfast study losses / dalif-ablation --quick) train on scikit-learn's
# bundled digits; --no-deps keeps its optional stack out (scipy and numpy are there already).
pip_install --no-deps scikit-learn==1.9.1 joblib==1.6.0 threadpoolctl==3.8.0 narwhals==2.28.0
if [[ "${1:-}" == "--test" ]]; then
  pip_install pytest
fi
# --no-build-isolation: build against the installed torch, not a fresh one in an isolated env.
MAX_JOBS=${MAX_JOBS:-2} pip_install --no-build-isolation -e .
