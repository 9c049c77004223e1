"""What ``snnfast study landscape``, ``features`` and ``robustness`` share on top of
``study_events`` (the data, networks, schedules and training of the functional-roles studies):
the networks by name, training all of a study's networks, batching a test set, the flags.

Every network trains (or resumes) in its own folder under ``--models``, shared with the other
functional-roles studies; the analyses run on the kept networks, so a second call redoes
them without training.
"""
from __future__ import annotations

from pathlib import Path

from .. import data as datasets
from . import study_events

NETWORKS = {n.name: n for n in study_events.SNN_VARIANTS + study_events.RNN_BASELINES}
DATA = ("ndigits", "nmnist")  # the paper runs these analyses on N-MNIST only
FULL_SCHEDULE = "Table 5's 100 epochs of Table 4's 512 neurons"


def short(name: str) -> str:
    """A network's name as a plot's title or legend shows it ("no leak recurrence")."""
    return name.replace("_", " ")


def train_all(names, setup, *, data_dir, models: Path, seed: int, samples: int | None, progress: bool) -> dict:
    """Trains (or loads) the networks ``names`` with ``setup``; returns ``{name: study_digits.Run}``."""
    runs = study_events.train_each(setup, [NETWORKS[name] for name in names], lambda network, run: run,
                                   lambda run: f"test accuracy {run.mean_acc:.1f} %", data_dir=data_dir,
                                   models=models, seed=seed, samples=samples, progress=progress)
    return dict(zip(names, runs))


def batches(dataset, batch_size: int = 256):
    """``(x [T, B, *F], labels [B])`` over ``dataset`` in order."""
    return datasets.make_loader(dataset, batch_size, train=False)


def parser(name: str, description: str, names):
    p = study_events.parser(name, description, FULL_SCHEDULE, data=DATA)
    p.add_argument("--networks", nargs="+", choices=list(names), default=list(names),
                   help=f"the networks to study (default: {' '.join(names)})")
    return p


def resolve(args, name: str):
    """(out, models) of a command line (``study_events.resolve``)."""
    return study_events.resolve(args, name, [NETWORKS[n] for n in args.networks])
