"""Checkpoints that cannot be read or do not fit say which file and what to do; a write
killed midway leaves no temporary file behind for good."""
import os
import signal
import subprocess
import sys

import pytest
import torch

from snnfast.train import checkpoint
from snnfast.train.checkpoint import CheckpointError, RunError
from test_train import ROOT, StandInNet, make_trainer

ADVICE = "delete it"


@pytest.fixture
def saved(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, meta={"setup": {"hidden": [16]}})
    trainer.fit()
    return tmp_path / "checkpoint.pt"


@pytest.mark.parametrize("spoil", ["empty", "truncated", "random"])
def test_unreadable_checkpoint_names_the_file_and_what_to_do(saved, spoil):
    data = saved.read_bytes()
    saved.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                       "random": os.urandom(4096)}[spoil])
    with pytest.raises(CheckpointError) as error:
        checkpoint.load(saved)
    message = str(error.value)
    assert message.startswith(f"{saved} (") and "cannot be read as a checkpoint" in message
    assert ADVICE in message and "--fresh" in message
    with pytest.raises(CheckpointError, match="cannot be read as a checkpoint"):
        make_trainer(saved.parent, epochs=2, resume=True)


def test_another_programs_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(RunError, match=rf"{path} is not a checkpoint of snnfast's Trainer \(no epoch, model"):
        make_trainer(tmp_path, epochs=2, resume=True)
    torch.save([1, 2], path)
    with pytest.raises(CheckpointError, match="holds a list, not a checkpoint"):
        checkpoint.load(path)


def test_another_architecture_is_explained_from_the_recorded_setup(saved):
    from snnfast.data import make_loader
    from snnfast.train import Trainer
    from test_train import mean_ce, tiny_dataset

    data = make_loader(tiny_dataset(), 8, train=True, seed=3)
    with pytest.raises(RunError) as error:
        Trainer(lambda: StandInNet(features=6, classes=5), data, mean_ce, epochs=2, lr=1e-2, lr_step=1,
                lr_gamma=0.5, out_dir=saved.parent, resume=True, progress=False, tensorboard=False,
                meta={"setup": {"hidden": [16]}})
    message = str(error.value)
    assert message.startswith(f"{saved} holds another network than this one: ")
    assert "size mismatch for out.weight" in message and "It records the setup: {'hidden': [16]}" in message


def test_stale_temporaries_are_removed_and_live_ones_kept(tmp_path):
    path = tmp_path / "checkpoint.pt"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".checkpoint.pt.tmp{dead.pid}"
    live = tmp_path / f".checkpoint.pt.tmp{os.getppid()}"
    other = tmp_path / f".best.pt.tmp{dead.pid}"
    for p in (stale, live, other):
        p.write_bytes(b"half")
    checkpoint.save_atomic({"epoch": 1}, path)
    assert not stale.exists() and live.exists() and other.exists()
    assert checkpoint.load(path) == {"epoch": 1}


KILLED_WRITE = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from test_train import make_trainer

def killed_midway(state, f, *args, **kwargs):
    f.write(b"PK half a checkpoint")
    f.flush()
    os.kill(os.getpid(), signal.SIGKILL)

trainer = make_trainer(sys.argv[1], epochs=2, resume=True)
torch.save = killed_midway
trainer.fit()
"""


def test_a_write_killed_midway_leaves_no_temporary_for_good(saved):
    script = saved.parent / "killed.py"
    script.write_text(KILLED_WRITE.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(script), str(saved.parent)], env=env, timeout=300)
    assert result.returncode == -signal.SIGKILL
    left = [p.name for p in saved.parent.glob(".checkpoint.pt.tmp*")]
    assert len(left) == 1  # what the kill left ...
    assert checkpoint.load(saved)["epoch"] == 1  # ... beside the previous checkpoint, whole
    make_trainer(saved.parent, epochs=2, resume=True)  # ... is gone when the run starts again
    assert list(saved.parent.glob(".checkpoint.pt.tmp*")) == []
