"""snnfast/_moved.py: every module path of the old layout still imports, as the very module
that now holds the code."""
import importlib
import os
import pickle
import subprocess
import sys

import pytest

import snnfast
from snnfast._moved import MOVED

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_old_name_is_the_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)
    if old.count(".") == 1:
        # Without an import statement too, as `snnfast.lowmem.lif_checkpointed` was used.
        assert getattr(snnfast, old.split(".", 1)[1]) is importlib.import_module(new)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_no_file_stands_at_an_old_path(old):
    # A file there would hide the move from git's rename detection when other branches merge.
    path = os.path.join(ROOT, *old.split(".")) + ".py"
    assert not os.path.exists(path), f"{path} exists: list the alias in snnfast/_moved.py instead"


def test_old_public_names():
    from snnfast.benchmark import interleaved_times, time_call  # noqa: F401
    from snnfast.bitpack import pack_bits, unpack_bits  # noqa: F401
    from snnfast.linear_lif import LinearLIF, linear_lif  # noqa: F401
    from snnfast.lowmem import lif_checkpointed, lif_saved_bf16, run_chunked, truncated_backward  # noqa: F401
    from snnfast.memory import SavedTensorBytes  # noqa: F401
    from snnfast.train import hooks

    assert hooks.build_model is snnfast.train.builders.build_model

    assert LinearLIF is snnfast.nn.LinearLIF
    assert lif_checkpointed is snnfast.lif_checkpointed


def test_pickled_under_the_old_module_path_loads():
    layer = snnfast.nn.LinearLIF(3, 2, beta=0.5)
    # A pickle written before the move names the class by its old module (protocol 0 writes
    # the name as a plain line, so it can be swapped here).
    data = pickle.dumps(layer, protocol=0).replace(b"snnfast.nn.linear", b"snnfast.linear_lif")
    assert b"snnfast.linear_lif" in data
    assert type(pickle.loads(data)) is snnfast.nn.LinearLIF


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no attribute 'lowmemory'"):
        snnfast.lowmemory


def test_python_m_old_module_runs_the_new_one():
    done = subprocess.run([sys.executable, "-m", "snnfast.benchmark", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: snnfast bench" in done.stdout
