"""The training infrastructure, with a small stand-in network (the real ones come from
snnfast.nn): exact resume, atomic checkpoints, DDP on two CPU processes, the CSV log, the CLI."""
import csv
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from snnfast.data import make_loader
from snnfast.train import SETUPS, StepAccuracy, Trainer, checkpoint, builders, class_accuracy, cli, get_setup

ROOT = Path(__file__).resolve().parents[1]


class StandInNet(nn.Module):
    """A stand-in for the snnfast networks in these tests only: per-step Linear layers over
    ``[T, B, F]``, with dropout so that the random state matters for resuming."""

    def __init__(self, features=6, classes=3, dropout=0.3):
        super().__init__()
        self.hidden = nn.Linear(features, 16)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(16, classes)

    def forward(self, x):
        return self.out(self.dropout(torch.tanh(self.hidden(x))))


def mean_ce(output, labels):
    return nn.functional.cross_entropy(output.mean(0), labels)


def tiny_dataset(n=48, T=5, features=6, classes=3):
    generator = torch.Generator().manual_seed(123)
    x = torch.randn(n, T, features, generator=generator)
    y = torch.randint(0, classes, (n,), generator=generator)
    return torch.utils.data.TensorDataset(x, y)


def make_trainer(out_dir, epochs, resume=False, dropout=0.3, **kwargs):
    dataset = tiny_dataset()
    return Trainer(
        lambda: StandInNet(dropout=dropout), make_loader(dataset, 8, train=True, seed=3), mean_ce,
        epochs=epochs, lr=1e-2, lr_step=1, lr_gamma=0.5, out_dir=out_dir,
        eval_data=make_loader(dataset, 16, train=False), seed=7, resume=resume, progress=False,
        tensorboard=False, **kwargs,
    )


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_resume_continues_bit_for_bit(tmp_path):
    straight = make_trainer(tmp_path / "straight", epochs=2)
    straight.fit()

    make_trainer(tmp_path / "resumed", epochs=1).fit()
    # A crash after the log row of epoch 2 but before its checkpoint: the row is redone.
    with open(tmp_path / "resumed" / "log.csv", "a") as f:
        f.write("2,0.005,9,9,9,9,9\n")
    resumed = make_trainer(tmp_path / "resumed", epochs=2, resume=True)
    assert resumed.start_epoch == 1
    resumed.fit()

    for name, value in straight.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name
    assert straight.optimizer.param_groups[0]["lr"] == resumed.optimizer.param_groups[0]["lr"] == 2.5e-3
    fresh = make_trainer(tmp_path / "fresh", epochs=0)
    assert not torch.equal(fresh.state_dict()["hidden.weight"], straight.state_dict()["hidden.weight"])

    rows = read_log(tmp_path / "resumed" / "log.csv")
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for row, expected in zip(rows, straight.history):
        assert math.isclose(float(row["train_loss"]), expected["train_loss"], rel_tol=1e-5)
        assert math.isclose(float(row["test_acc"]), expected["test_acc"], rel_tol=1e-5)


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    trainer = make_trainer(tmp_path, epochs=1, resume=True)
    assert trainer.start_epoch == 0
    trainer.fit()
    assert checkpoint.load(tmp_path / "checkpoint.pt")["epoch"] == 1


def test_keep_best_keeps_the_lowest_training_loss(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3, keep_best=True)
    history = trainer.fit()
    losses = [row["train_loss"] for row in history]
    best = 1 + losses.index(min(losses))
    assert trainer.best_epoch() == best
    saved = checkpoint.load(tmp_path / "best.pt")
    assert saved["epoch"] == best
    if best == len(history):  # then best.pt holds the final weights
        for name, value in trainer.state_dict().items():
            assert torch.equal(value, saved["model"][name]), name
    # load_best puts those weights in the model.
    with torch.no_grad():
        for p in trainer.module.parameters():
            p.fill_(123.0)
    assert trainer.load_best() == best
    for name, value in trainer.state_dict().items():
        assert torch.equal(value, saved["model"][name]), name

    plain = make_trainer(tmp_path / "plain", epochs=1)
    plain.fit()
    assert not (tmp_path / "plain" / "best.pt").exists()
    with pytest.raises(FileNotFoundError, match="keep_best"):
        plain.load_best()


def test_optimizer_and_scheduler_factories_replace_the_defaults(tmp_path):
    # No lr, lr_step or lr_gamma: the factories need none of them.
    dataset = tiny_dataset()
    trainer = Trainer(
        lambda: StandInNet(), make_loader(dataset, 8, train=True, seed=3), mean_ce, epochs=2,
        out_dir=tmp_path, progress=False, tensorboard=False,
        optimizer=lambda model: torch.optim.SGD(model.parameters(), lr=0.5),
        scheduler=lambda optimizer: torch.optim.lr_scheduler.ExponentialLR(optimizer, 0.1),
    )
    assert isinstance(trainer.optimizer, torch.optim.SGD)
    assert [row["lr"] for row in trainer.fit()] == pytest.approx([0.5, 0.05])


def test_default_adam_and_step_lr(tmp_path):
    trainer = make_trainer(tmp_path, epochs=3)
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert [row["lr"] for row in trainer.fit()] == pytest.approx([1e-2, 5e-3, 2.5e-3])  # lr_step 1, gamma 0.5


@pytest.mark.parametrize("missing, message", [
    ("lr", "lr is required for the default Adam optimizer"),
    ("lr_step", "lr_step and lr_gamma are required for the default StepLR"),
])
def test_defaults_without_their_arguments_say_what_is_missing(tmp_path, missing, message):
    options = dict(lr=1e-2, lr_step=1, lr_gamma=0.5)
    del options[missing]
    with pytest.raises(TypeError, match=message):
        Trainer(lambda: StandInNet(), [], mean_ce, epochs=1, out_dir=tmp_path, progress=False,
                tensorboard=False, **options)


def test_csv_log(tmp_path):
    history = make_trainer(tmp_path, epochs=2).fit()
    rows = read_log(tmp_path / "log.csv")
    assert list(rows[0]) == ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds"]
    assert [float(r["lr"]) for r in rows] == [1e-2, 5e-3]
    for row, entry in zip(rows, history):
        assert 0.0 <= float(row["train_acc"]) <= 1.0 and 0.0 <= float(row["test_acc"]) <= 1.0
        assert math.isfinite(float(row["train_loss"])) and float(row["train_loss"]) > 0
        assert math.isclose(float(row["test_loss"]), entry["test_loss"], rel_tol=1e-5)


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    first = make_trainer(tmp_path, epochs=1)
    first.fit()
    saved = {k: v.clone() for k, v in first.state_dict().items()}
    real_save = torch.save

    def crash_midway(state, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("simulated crash while writing")

    monkeypatch.setattr(torch, "save", crash_midway)
    second = make_trainer(tmp_path, epochs=2, resume=True)
    with pytest.raises(OSError, match="simulated crash"):
        second.fit()
    monkeypatch.setattr(torch, "save", real_save)

    state = checkpoint.load(tmp_path / "checkpoint.pt")
    assert state["epoch"] == 1
    assert all(torch.equal(state["model"][k], saved[k]) for k in saved)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "log.csv"]


DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, {tests!r})
from test_train import make_trainer
from snnfast.train import distributed

context = distributed.setup("cpu")
trainer = make_trainer(sys.argv[1], epochs=2, dropout=0.0)
seen = [y for _, y in trainer.train_data]
trainer.fit()
torch.save({{"state": trainer.state_dict(), "seen": torch.cat(seen)}}, f"{{sys.argv[1]}}/rank{{context.rank}}.pt")
distributed.teardown()
"""


def test_ddp_two_cpu_processes_end_identical(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(script), str(tmp_path / "run")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "run" / f"rank{r}.pt") for r in range(2)]
    for name, value in ranks[0]["state"].items():
        assert torch.equal(value, ranks[1]["state"][name]), name
    # each rank saw its own half of every global batch of 8 ...
    assert len(ranks[0]["seen"]) == len(ranks[1]["seen"]) == 24
    assert not torch.equal(ranks[0]["seen"], ranks[1]["seen"])
    # ... and averaging their gradients equals one process on the whole batch
    single = make_trainer(tmp_path / "single", epochs=2, dropout=0.0)
    single.fit()
    for name, value in single.state_dict().items():
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-4, atol=1e-5)
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["epoch"] == 2
    assert len(read_log(tmp_path / "run" / "log.csv")) == 2


def test_setups_follow_tables_4_and_5():
    table = {  # epochs, batch, lr, threshold, surrogate width, StepLR, hidden, classes
        "xor": (150, 500, 1e-2, 0.5, 0.5, (50, 0.1), (16,), 2),
        "shd": (100, 100, 1e-2, 0.5, 0.5, (20, 0.5), (64,), 20),
        "ssc": (100, 100, 1e-2, 0.5, 0.5, (25, 0.1), (200,), 35),
        "nmnist": (100, 512, 1e-4, 0.3, 0.25, (25, 0.1), (512,), 10),
        "dvs_gesture": (100, 512, 0.1, 0.3, 0.25, (25, 0.1), (512, 512), 11),
        "mnist": (100, 512, 1e-4, 0.3, 0.25, (25, 0.1), (512,), 10),
        "cifar10": (100, 512, 1e-4, 0.3, 0.25, (25, 0.1), (), 10),
    }
    assert set(table) == set(SETUPS)
    for name, (epochs, batch, lr, threshold, width, (step, gamma), hidden, classes) in table.items():
        s = SETUPS[name]
        assert (s.epochs, s.batch_size, s.lr, s.threshold, s.surrogate_width) == (epochs, batch, lr, threshold, width)
        assert (s.lr_step, s.lr_gamma, s.hidden, s.num_classes, s.optimizer) == (step, gamma, hidden, classes, "adam")
        assert s.beta == ("learnable" if name in ("xor", "shd", "ssc") else 0.3)
    assert get_setup("shd", T=500, lr=None).T == 500 and get_setup("shd", lr=None).lr == 1e-2
    with pytest.raises(ValueError, match="unknown setup"):
        get_setup("imagenet")


def test_cli_wires_setup_variant_data_and_resume(tmp_path, monkeypatch):
    built = []

    def stand_in_model(setup, args):
        built.append(setup)
        return StandInNet(features=20, classes=2)

    monkeypatch.setattr(builders, "build_model", stand_in_model)
    monkeypatch.setattr(builders, "build_loss", lambda setup, args: mean_ce)
    argv = ["xor", "--leak", "none", "--reset", "none", "--recurrent", "--batch-size", "4",
            "--out", str(tmp_path), "--no-progress", "--seed", "2"]
    cli.main(argv + ["--epochs", "1"])
    history = cli.main(argv + ["--epochs", "2", "--resume"])
    assert [row["epoch"] for row in history] == [1, 2]
    setup = built[-1]
    assert (setup.beta, setup.reset, setup.recurrent, setup.batch_size) == (1.0, "none", True, 4)
    assert [r["epoch"] for r in read_log(tmp_path / "log.csv")] == ["1", "2"]
    with pytest.raises(SystemExit):
        cli.main(["xor", "--leak", "2.0"])


def test_accuracy_counters():
    output = torch.zeros(4, 2, 3)
    output[:, 0, 1] = 1.0  # sample 0 -> class 1 at every step
    output[:2, 1, 2], output[2:, 1, 0] = 1.0, 3.0  # sample 1 -> class 2, then class 0 (wins on average)
    labels = torch.tensor([1, 2])
    correct, count = class_accuracy(output, labels)
    assert (int(correct), count) == (1, 2)
    correct, count = StepAccuracy(slice(1, 4))(output, labels)
    assert (int(correct), count) == (4, 6)  # sample 0: 3 steps right; sample 1: step 1 only
    assert StepAccuracy(slice(1, 4)).per_step(output, labels).tolist() == [2, 1, 1]
