"""Checks that what install.sh installs with --no-deps works: every such package imports,
and every requirement it declares is installed, except the few left out on purpose (named
here with the reason). install.sh runs this after installing; tests/test_install.py too.

    python3 tests/check_imports.py      # exit status 1 and one line per problem
"""
from __future__ import annotations

import importlib
import sys
from importlib import metadata

from packaging.requirements import Requirement

# Installed with --no-deps (install.sh, requirements-data.txt): distribution -> the module
# snnfast imports from it.
NO_DEPS = {
    "spikingjelly": "spikingjelly.activation_based.neuron",
    "snntorch": "snntorch",
    "tonic": "tonic.datasets",
    "h5py": "h5py",
    "importRosbag": "importRosbag",
    "aedat": "aedat",
    "requests": "requests",
    "nir": "nir",
    "nirtorch": "nirtorch",
}

# Declared requirements that are not installed, and why snnfast does not need them.
LEFT_OUT = {
    "spikingjelly": {
        "torchvision": "its datasets and models, which snnfast does not use (and would pull a CUDA torch)",
        "torchaudio": "its audio datasets (would pull a CUDA torch)",
        "scienceplots": "its plotting styles",
        "tensorboard": "its training examples",
    },
    "tonic": {
        "librosa": "tonic's audio transforms only",
        "expelliarmus": "never imported by tonic 1.7.0",
    },
}


def problems() -> list[str]:
    found = []
    for dist, module in NO_DEPS.items():
        try:
            requires = metadata.distribution(dist).requires or []
        except metadata.PackageNotFoundError:
            found.append(f"{dist} is not installed (install.sh installs it)")
            continue
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
                continue  # an extra, or another platform's
            name = requirement.name.lower().replace("_", "-")
            if name in LEFT_OUT.get(dist, {}):
                continue
            try:
                metadata.distribution(name)
            except metadata.PackageNotFoundError:
                found.append(f"{dist} requires {requirement}, which is not installed: add it to install.sh "
                             f"(or to LEFT_OUT in tests/check_imports.py, with the reason it is not needed)")
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001  (any failure to import is the finding)
            found.append(f"import {module} ({dist}) fails: {type(error).__name__}: {error}")
    return found


if __name__ == "__main__":
    found = problems()
    for line in found:
        print(f"check_imports: {line}", file=sys.stderr)
    sys.exit(1 if found else 0)
