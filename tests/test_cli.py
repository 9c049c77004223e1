"""The commands: `snnfast`, `snnfast train` and `snnfast study`, as a user types them,
including what they must refuse instead of doing something else without a word."""
import argparse
import csv

import pytest
import torch

from snnfast import __version__
from snnfast.utils import benchmark
from snnfast.__main__ import main as snnfast_main
from snnfast.train import builders, cli, study
from test_train import StandInNet, mean_ce


def read_epochs(path):
    with open(path, newline="") as f:
        return [row["epoch"] for row in csv.DictReader(f)]


# ---------------------------------------------------------------- snnfast

def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        snnfast_main(["--version"])
    assert exit.value.code == 0 and capsys.readouterr().out.strip() == f"snnfast {__version__}"


@pytest.mark.parametrize("argv, problem", [(["trian"], "unknown command 'trian'"), ([], "a command is required")])
def test_unknown_or_missing_command_says_so_and_exits_2(argv, problem, capsys):
    with pytest.raises(SystemExit) as exit:
        snnfast_main(argv)
    err = capsys.readouterr().err
    assert exit.value.code == 2
    assert f"snnfast: error: {problem} (choose from bench, study, train)" in err and "usage: snnfast" in err


def test_help_exits_0(capsys):
    with pytest.raises(SystemExit) as exit:
        snnfast_main(["--help"])
    assert exit.value.code == 0 and "train" in capsys.readouterr().out




@pytest.mark.parametrize("command", ["train", "study"])
def test_command_help_names_the_command_and_every_option(command, capsys):
    p = (cli if command == "train" else study).parser()
    assert p.prog == f"snnfast {command}"
    missing = [a.dest for a in p._actions if not isinstance(a, argparse._HelpAction) and not a.help]
    assert missing == []
    with pytest.raises(SystemExit):
        snnfast_main([command, "--help"])
    text = capsys.readouterr().out
    assert text.startswith(f"usage: snnfast {command} ") and "``" not in text and "python -m" not in text.split("\n\n")[0]


def test_bench_help_has_no_internal_names(capsys):
    with pytest.raises(SystemExit):
        snnfast_main(["bench", "--help"])
    text = capsys.readouterr().out
    assert text.startswith("usage: snnfast bench") and "keep_freed_memory" not in text
    flat = " ".join(text.split())
    assert "--device DEVICE the device to time on" in flat and "--repeats REPEATS timed runs" in flat


# ---------------------------------------------------------------- snnfast train

@pytest.fixture
def train(tmp_path, monkeypatch, capsys):
    """cli.main on the xor setup with a stand-in network and 2 batches an epoch; returns
    (run, out folder), where run(*flags) gives (exit status, what it printed)."""
    real_data = cli.xor.train_and_test
    monkeypatch.setattr(cli.xor, "train_and_test", lambda batch_size, batches, seed: real_data(batch_size, 2, seed))
    monkeypatch.setattr(builders, "build_model", lambda setup, args: StandInNet(features=20, classes=2))
    monkeypatch.setattr(builders, "build_loss", lambda setup, args: mean_ce)
    out = tmp_path / "run"

    def run(*flags):
        capsys.readouterr()
        try:
            cli.main(["xor", "--batch-size", "2", "--out", str(out), "--no-progress", *flags])
        except SystemExit as exit:
            printed = capsys.readouterr()
            return exit.code, printed.out + printed.err
        printed = capsys.readouterr()
        return 0, printed.out + printed.err

    return run, out


def test_existing_run_folder_without_resume_is_refused(train):
    run, out = train
    assert run("--epochs", "2")[0] == 0
    before = (out / "log.csv").read_text(), (out / "checkpoint.pt").read_bytes()
    status, err = run("--epochs", "1")
    assert status == 2 and "already holds a run" in err and "--resume" in err and "--fresh" in err
    assert ((out / "log.csv").read_text(), (out / "checkpoint.pt").read_bytes()) == before
    assert run("--epochs", "1", "--fresh")[0] == 0
    assert read_epochs(out / "log.csv") == ["1"]


@pytest.mark.parametrize("flags, message", [
    (("--T", "10"), "--T 10: the XOR task's sequences have a fixed length of 200 steps"),
    (("--epochs", "0"), "argument --epochs: must be positive, got 0"),
    (("--epochs", "-1"), "argument --epochs: must be positive, got -1"),
    (("--T", "-5"), "argument --T: must be positive, got -5"),
    (("--lr", "0"), "argument --lr: must be positive"),
    (("--batch-size", "0"), "argument --batch-size: must be positive"),
    (("--workers", "-1"), "argument --workers: must be 0 or more"),
    (("--resume", "--fresh"), "not allowed with argument"),
])
def test_flags_that_would_do_nothing_or_something_else_are_refused(train, flags, message):
    run, out = train
    status, err = run(*flags)
    assert status == 2 and message in err
    assert not out.exists()


def test_resume_without_a_checkpoint_is_refused(train):
    run, out = train
    status, err = run("--epochs", "1", "--resume")
    assert status == 2 and f"no checkpoint.pt in {out}" in err and "drop --resume" in err


@pytest.mark.parametrize("flags, changed", [(("--lr", "0.5"), "setup.lr 0.01 -> 0.5"),
                                            (("--seed", "3"), "seed 0 -> 3"),
                                            (("--recurrent",), "setup.recurrent False -> True")])
def test_resume_with_other_settings_is_refused(train, flags, changed):
    run, out = train
    run("--epochs", "1")
    status, err = run("--epochs", "2", "--resume", *flags)
    assert status == 2 and changed in err and "drop the flags that differ" in err
    assert read_epochs(out / "log.csv") == ["1"]
    assert run("--epochs", "2", "--resume")[0] == 0  # the same settings continue
    assert read_epochs(out / "log.csv") == ["1", "2"]


def test_resume_with_fewer_epochs_than_done_is_refused_and_equal_says_so(train):
    run, out = train
    run("--epochs", "2")
    status, err = run("--epochs", "1", "--resume")
    assert status == 2 and "has 2 epochs done, more than epochs = 1" in err
    status, err = run("--epochs", "2", "--resume")
    assert status == 0 and "all 2 epochs are done" in err


def test_corrupt_checkpoint_on_resume_names_the_file(train):
    run, out = train
    run("--epochs", "1")
    (out / "checkpoint.pt").write_bytes(b"")
    status, err = run("--epochs", "2", "--resume")
    assert status == 2 and f"{out / 'checkpoint.pt'} (0 bytes) cannot be read as a checkpoint" in err
    assert "--fresh" in err


# ---------------------------------------------------------------- snnfast study

def study_main(capsys, *flags):
    capsys.readouterr()
    study.main(["xor", "--batches", "1", "--no-progress", *flags])
    return capsys.readouterr().out


def test_study_over_a_finished_study_with_other_settings_is_refused(tmp_path, capsys):
    out = str(tmp_path)
    study_main(capsys, "--epochs", "2", "--variants", "no_leak", "--out", out)
    for flags in (("--epochs", "1"), ("--seed", "4"), ("--quick", "--epochs", "2")):
        with pytest.raises(SystemExit) as exit:
            study_main(capsys, *flags, "--variants", "no_leak", "--out", out)
        assert "--fresh discards it" in str(exit.value)
    printed = study_main(capsys, "--epochs", "2", "--variants", "no_leak", "--out", out)  # the same: reprinted
    assert "| Without leakage (beta = 1) |" in printed and "| 2 |" in printed


def test_study_ordering_of_a_single_variant_is_not_claimed(tmp_path, capsys):
    printed = study_main(capsys, "--epochs", "1", "--variants", "baseline", "--out", str(tmp_path))
    assert "Table 6's ordering: not checked" in printed and "holds" not in printed.split("ordering:")[1].split("\n")[0]
    # The baseline after one epoch of one batch is far below the paper's 77.5 %: said so.
    assert "against the paper's 77.5 %" in printed


def summary_row(name, kept):
    v = {v.name: v for v in study.VARIANTS}[name]
    return {"variant": name, "label": v.label, "paper": v.paper, "kept": kept}


def test_ordering_summary_counts_the_checks_made():
    assert study.ordering_summary([summary_row("baseline", 60)]).startswith("Table 6's ordering: not checked")
    line = study.ordering_summary([summary_row("no_leak", 50)])
    assert line.startswith("Table 6's ordering: holds (1 of 5 checks; the others need: baseline, complete_leak, "
                           "no_reset, recurrence)")
    rows = [summary_row(n, k) for n, k in (("baseline", 52.4), ("no_leak", 50), ("complete_leak", 50),
                                          ("no_reset", 97), ("recurrence", 98))]
    assert study.ordering_summary(rows) == "Table 6's ordering: holds"
    assert study.paper_gaps(rows) == ["Baseline (learnable leak, hard reset): 52.4 % against the paper's 77.5 %"]
