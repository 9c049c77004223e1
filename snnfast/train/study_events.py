"""What the functional-roles paper's analyses on event data share (``snnfast study leakage``,
``firing``, ``generalization``, and the studies built on them): the data (N-MNIST from
--data-dir, the simulated N-Digits anywhere, SHD and SSC where the paper uses them), the
networks of Table 4 (the SNN variants, and RNN baselines of the same size), the schedules of
Table 5 (``--quick``: a smaller one), one resumable training run per network, and the
measurements on a trained network.

Trained networks live in one folder, ``--models`` (default ``runs/roles-models-<data>[-quick]``),
one sub-folder per network, shared by every study: ``firing`` reuses what ``generalization``
trained with the same settings (the checkpoint's settings must match, or the run stops and says
so). Each study writes its own results to ``--out``.
"""
from __future__ import annotations

import argparse
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Subset

from .. import data as datasets
from ..models import SpikingMLP
from ..nn import LIF
from . import builders, study_digits
from .checkpoint import RunError
from .config import Setup, get_setup
from .metrics import class_accuracy

# --data: name -> the Table 4/5 setup it trains with. N-Digits stands in for N-MNIST, so it
# takes N-MNIST's network and hyper-parameters.
DATA = {
    "ndigits": ("nmnist", {"dataset": "ndigits", "name": "ndigits"}),
    "nmnist": ("nmnist", {}),
    "shd": ("shd", {}),
    "ssc": ("ssc", {}),
}
# --quick: two epochs of a 128-neuron hidden layer, at a larger learning rate so that they
# learn something (about a minute a network on 2 cores on N-Digits).
QUICK = dict(epochs=2, batch_size=64, lr=3e-3, lr_step=2, hidden=(128,))
# N-MNIST-like recordings are cut (or padded) to their first 300 ms (three saccades) at every
# time window, so that every batch and every resolution covers the same stretch of time.
RECORDING_MS = 300
WINDOWED = ("nmnist", "ndigits")


@dataclass(frozen=True)
class Network:
    """One trained network of a study: an SNN variant (``changes`` to the setup: beta, reset,
    recurrent) or an RNN baseline (``rnn``: "lstm", "gru" or "rnn")."""
    name: str
    label: str
    changes: dict = field(default_factory=dict)
    rnn: str | None = None


# Table 8's rows (leakage, reset, recurrence), the same names in every study.
BASELINE = Network("baseline", "SNN (baseline): normal leak, normal reset, no recurrence")
SNN_VARIANTS = (
    BASELINE,
    Network("no_leak", "SNN: without leakage (beta = 1)", {"beta": 1.0}),
    Network("complete_leak", "SNN: complete leakage (beta = 0)", {"beta": 0.0}),
    Network("no_reset", "SNN: without reset", {"reset": "none"}),
    Network("recurrence", "SNN: with recurrence", {"recurrent": True}),
    Network("no_leak_recurrence", "SNN: without leakage, with recurrence", {"beta": 1.0, "recurrent": True}),
    Network("no_leak_no_reset_recurrence", "SNN: without leakage and reset, with recurrence",
            {"beta": 1.0, "reset": "none", "recurrent": True}),
)
RNN_BASELINES = (
    Network("lstm", "LSTM", rnn="lstm"),
    Network("gru", "GRU", rnn="gru"),
    Network("vanilla_rnn", "Vanilla RNN", rnn="rnn"),
)


def setup_for(data: str, quick: bool, epochs: int | None = None) -> Setup:
    """The Table 4/5 setup of ``data`` (``--quick``: QUICK's schedule and width)."""
    try:
        base, renamed = DATA[data]
    except KeyError:
        raise ValueError(f"unknown data set {data!r}; known: {', '.join(DATA)}") from None
    setup = get_setup(base).replace(**renamed)
    if quick:
        setup = setup.replace(**QUICK)
    return setup.replace(epochs=epochs)


class RNNClassifier(nn.Module):
    """Input-RNN(hidden)-FC(classes) over ``[T, B, ...]`` (flattened after B): per-step logits
    ``[T, B, classes]``, classified like the SNNs by their mean over time."""

    CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def __init__(self, kind: str, inputs: int, hidden: int, classes: int):
        super().__init__()
        if kind not in self.CELLS:
            raise ValueError(f"kind must be one of {', '.join(self.CELLS)}, got {kind!r}")
        self.rnn = self.CELLS[kind](inputs, hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.flatten(2))
        return self.fc(out)


def build_network(setup: Setup, network: Network) -> nn.Module:
    """Table 4's network of ``setup`` with ``network``'s variant (or its RNN baseline)."""
    sizes = (setup.input_size, *setup.hidden, setup.num_classes)
    if network.rnn is not None:
        if len(sizes) != 3:
            raise ValueError(f"the RNN baselines have one hidden layer; {setup.name} has {len(setup.hidden)}")
        return RNNClassifier(network.rnn, *sizes)
    variant = setup.replace(**network.changes)
    return SpikingMLP(sizes, **builders.neuron_options(variant))  # recurrent=True among the options


def load_split(setup: Setup, data_dir: Path | None, split: str, samples: int | None = None,
               window_ms: float | None = None):
    """The ``split`` of ``setup``'s data set (N-MNIST-like data: RECORDING_MS in frames of
    ``window_ms``, default the setup's); with ``samples`` only the first that many (a smoke test)."""
    options = dict(setup.data)
    if window_ms is not None:
        options["time_window_ms"] = window_ms
    if setup.dataset in WINDOWED:
        options["T"] = math.ceil(RECORDING_MS / options["time_window_ms"])
    if setup.dataset != "ndigits" and data_dir is None:
        raise SystemExit(f"--data {setup.dataset} needs --data-dir (the folder holding its files)")
    dataset = datasets.DATASETS[setup.dataset](data_dir, split, **options)
    return Subset(dataset, range(min(samples, len(dataset)))) if samples is not None else dataset


def meta(setup: Setup, network: Network, seed: int, samples: int | None) -> dict:
    return {"setup": setup.replace(**network.changes).as_dict(), "network": network.name,
            "rnn": network.rnn, "seed": seed, "samples": samples}


def train(setup: Setup, network: Network, *, data_dir: Path | None, models: Path, seed: int = 0,
          samples: int | None = None, progress: bool = True) -> study_digits.Run:
    """Trains ``network`` on ``setup`` (Adam, StepLR, the SDT loss on the time-averaged output)
    in ``models / network.name``, resuming a run of the same settings found there."""
    train_set = load_split(setup, data_dir, "train", samples)
    test_set = load_split(setup, data_dir, "test", samples)
    return study_digits.train_run(
        lambda: build_network(setup, network), builders.build_loss(setup), train_set, test_set, T=None,
        epochs=setup.epochs, lr=setup.lr, batch_size=setup.batch_size, out_dir=models / network.name,
        seed=seed, progress=progress, collate=datasets.time_major_collate, lr_step=setup.lr_step,
        meta=meta(setup, network, seed, samples))


def train_and_measure(items, train_one: Callable, measure: Callable, describe: Callable[..., str], *,
                      label: Callable[..., str] = lambda item: item.label, progress: bool = True) -> list:
    """The loop of every study over its networks: for each of ``items`` in turn, trains it
    (``train_one(item)``, which resumes the run its folder holds) and measures the trained
    network (``measure(item, run)``); returns the measurements in order. With ``progress``,
    ``[i/n] label(item)`` before each and ``describe(measurement)`` with the seconds the call
    took after."""
    results = []
    for i, item in enumerate(items):
        if progress:
            print(f"[{i + 1}/{len(items)}] {label(item)}", flush=True)
        started = time.perf_counter()
        results.append(measure(item, train_one(item)))
        if progress:
            print(f"    {describe(results[-1])} ({time.perf_counter() - started:.0f} s this call)", flush=True)
    return results


def train_each(setup: Setup, networks, measure: Callable, describe: Callable[..., str], *, data_dir: Path | None,
               models: Path, seed: int, samples: int | None, progress: bool) -> list:
    """``train_and_measure`` over ``networks`` (of ``Network``), each trained by ``train``."""
    return train_and_measure(
        networks, lambda network: train(setup, network, data_dir=data_dir, models=models, seed=seed, samples=samples,
                                        progress=progress),
        measure, describe, progress=progress)


def accuracy(model: nn.Module, dataset, batch_size: int = 256) -> float:
    """Test accuracy (%) of ``model`` on ``dataset``, from the time-averaged output."""
    loader = datasets.make_loader(dataset, batch_size, train=False)
    model.eval()
    correct, count = 0, 0
    with torch.no_grad():
        for x, labels in loader:
            right, n = class_accuracy(model(x), labels)
            correct, count = correct + int(right), count + n
    return 100.0 * correct / count


def spike_rates(model: nn.Module, dataset, batch_size: int = 256) -> list[torch.Tensor]:
    """Each spiking layer's per-neuron firing rate over ``dataset``: spikes per neuron per
    time step, averaged over samples and steps (one tensor ``[N]`` per layer, input to output).
    Sequences shorter than the batch's longest are zero-padded by the loader, and the padded
    steps count (N-MNIST-like recordings all last ~300 ms)."""
    layers = [m for m in model.modules() if isinstance(m, LIF)]  # RecurrentLIF is a LIF
    if not layers:
        raise ValueError("spike_rates: the model has no spiking layers (snnfast.nn.LIF or RecurrentLIF)")
    sums = [None] * len(layers)
    steps = [0]

    def record(index):
        def hook(module, inputs, output):
            total = output.detach().flatten(0, -2).sum(0)
            sums[index] = total if sums[index] is None else sums[index] + total
            if index == 0:
                steps[0] += output.shape[:-1].numel()
        return hook

    handles = [layer.register_forward_hook(record(i)) for i, layer in enumerate(layers)]
    try:
        loader = datasets.make_loader(dataset, batch_size, train=False)
        model.eval()
        with torch.no_grad():
            for x, _ in loader:
                model(x)
    finally:
        for handle in handles:
            handle.remove()
    return [total.double() / steps[0] for total in sums]


def parser(name: str, description: str, full: str, data=tuple(DATA)) -> argparse.ArgumentParser:
    """The flags every functional-roles study on event data shares (each adds its own);
    ``data``: the data sets it runs on."""
    p = argparse.ArgumentParser(prog=f"snnfast study {name}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=sorted(data), default="ndigits",
                   help="data set (default ndigits, simulated here; the others need --data-dir)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="folder holding NMNIST/, SHD/ or SSC/ (with ndigits: where to cache its events)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['epochs']} epochs of a {QUICK['hidden'][0]}-neuron hidden layer, batch "
                        f"{QUICK['batch_size']}, lr {QUICK['lr']} (minutes on 2 cores) instead of {full}")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--out", type=Path, default=None,
                   help=f"results folder (default runs/study-{name}-<data>[-quick])")
    p.add_argument("--models", type=Path, default=None,
                   help="folder of the trained networks, shared by the studies (default "
                        "runs/roles-models-<data>[-quick])")
    p.add_argument("--fresh", action="store_true",
                   help="discard --out and this study's networks in --models, and start over")
    p.add_argument("--samples", type=int, default=None,
                   help="use only the first N training and test samples (a smoke test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-network lines")
    return p


def resolve(args, name: str, networks) -> tuple[Path, Path]:
    """Checks the shared flags; returns (out, models), emptied of this study's runs with --fresh."""
    if args.epochs is not None and args.epochs < 1:
        raise SystemExit(f"--epochs must be positive, got {args.epochs}")
    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"--samples must be positive, got {args.samples}")
    suffix = f"-{args.data}" + ("-quick" if args.quick else "")
    out = args.out or Path("runs") / f"study-{name}{suffix}"
    models = args.models or Path("runs") / f"roles-models{suffix}"
    if args.fresh:
        shutil.rmtree(out, ignore_errors=True)
        for network in networks:
            shutil.rmtree(models / network.name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out, models


def run_from_args(name: str, run, selection, args, out: Path, models: Path) -> list[dict]:
    """``run(selection, ...)`` with the shared flags; a stored run of other settings becomes an
    error that says what to do."""
    try:
        return run(selection, data=args.data, data_dir=args.data_dir, quick=args.quick, epochs=args.epochs,
                   out=out, models=models, seed=args.seed, samples=args.samples, progress=not args.no_progress)
    except RunError as error:
        raise SystemExit(f"snnfast study {name}: error: {error}\nA folder holds a network trained with other "
                         "settings: --fresh discards it, --out / --models choose others")
