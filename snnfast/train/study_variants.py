"""What ``snnfast study landscape``, ``features`` and ``robustness`` share: the functional-roles
paper's variants (Table 6, Figure 5) and an LSTM baseline, trained on an event data set
(N-MNIST, or the event digits) with the N-MNIST setup of Tables 4 and 5, one resumable
Trainer run per model; the data; the last hidden layer's spike rates; the shared flags.

Every model trains in its own folder under ``--models`` (default ``<out>/models``) with a
checkpoint each epoch: the same command continues after an interruption, and the analyses
rerun on the kept models without training (two studies given the same ``--models`` share
their models).
"""
from __future__ import annotations

import argparse
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset, Subset

from .. import data as datasets
from . import hooks
from .config import get_setup
from .metrics import class_accuracy
from .trainer import Trainer


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # as the paper names it
    changes: dict  # fields of the N-MNIST setup that differ from the baseline; None: the LSTM


VARIANTS = {v.name: v for v in (
    Variant("baseline", "Baseline", {}),
    Variant("no_leak", "Without leakage", {"beta": 1.0}),
    Variant("complete_leak", "Complete leakage", {"beta": 0.0}),
    Variant("no_reset", "Without reset", {"reset": "none"}),
    Variant("recurrence", "With recurrence", {"recurrent": True}),
    # Figure 5(b): one SNN without leakage and with recurrence.
    Variant("no_leak_recurrence", "Without leakage, with recurrence", {"beta": 1.0, "recurrent": True}),
    Variant("lstm", "LSTM", None),
)}

# Table 5 for N-MNIST: 100 epochs, batch 512, Adam lr 1e-4, StepLR(25, 0.1), 3 ms frames.
# --quick (the event digits' 1,347 training samples, 2 shared cores): fewer epochs at a higher
# rate and smaller batches, so that each study trains its models in a few minutes.
FULL = dict(epochs=100, batch_size=512, lr=1e-4, lr_step=25, time_window_ms=3.0)
QUICK = dict(epochs=6, batch_size=64, lr=1e-3, lr_step=4, time_window_ms=3.0)


class RNNClassifier(nn.Module):
    """Input(2312)-LSTM(512)-FC(10) (Section 4.2.1's RNN baselines): ``[T, B, *F]`` in, logits
    at every step ``[T, B, classes]`` out (trained, like the SNNs, on their mean over time)."""

    def __init__(self, input_size: int = 2312, hidden: int = 512, classes: int = 10):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.rnn(x.flatten(2))
        return self.fc(hidden)


def build_model(variant: Variant) -> nn.Module:
    if variant.changes is None:
        return RNNClassifier()
    return hooks.build_model(get_setup("nmnist", **variant.changes))


def build_loss() -> nn.Module:
    """The N-MNIST setup's loss (SDT: cross-entropy of the output averaged over time)."""
    return hooks.build_loss(get_setup("nmnist"))


def last_hidden_layer(model: nn.Module) -> nn.Module:
    """The module whose output is the last hidden layer: the neurons before the last Linear
    of a SpikingMLP (a RecurrentLIF holds its own Linear), the LSTM of an RNNClassifier."""
    if isinstance(model, RNNClassifier):
        return model.rnn
    layers = list(model.layers)
    last_linear = max(i for i, layer in enumerate(layers) if isinstance(layer, nn.Linear))
    if last_linear == 0:
        raise ValueError("the network has no hidden layer before its last Linear")
    return layers[last_linear - 1]


def hidden_rates(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The last hidden layer's output averaged over time, ``[B, hidden]``: spike rates of an
    SNN (the feature space of Figure 6), mean hidden state of an LSTM."""
    captured = []

    def keep(module, inputs, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = last_hidden_layer(model).register_forward_hook(keep)
    try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()
    return captured[-1].mean(0)


# --data: name -> the dataset class (split, time_window_ms), with --data-dir.
DATA = {"nmnist": datasets.NMNIST}


def load(name: str, data_dir: Path | None, time_window_ms: float, samples: int | None = None):
    """(train, test) frames ``[T, 2, 34, 34]`` of ``name``; with ``samples`` only the first that
    many of each split (a smoke test)."""
    try:
        cls = DATA[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATA)}") from None
    if data_dir is None:
        raise SystemExit(f"--data {name} needs --data-dir (the folder holding its files)")
    train, test = (cls(data_dir, split, time_window_ms=time_window_ms) for split in ("train", "test"))
    if samples is not None:
        train, test = (Subset(split, range(min(samples, len(split)))) for split in (train, test))
    return train, test


def train(variant: Variant, train_set: Dataset, test_set: Dataset, *, epochs: int, batch_size: int, lr: float,
          lr_step: int, out_dir: Path, seed: int = 0, progress: bool = True, meta: dict | None = None,
          **_) -> tuple[nn.Module, list[dict]]:
    """Trains ``variant`` (resuming from ``out_dir``); returns the final network in eval mode and
    the log rows of every epoch. ``meta`` (e.g. the data set) must match on resume."""
    if len(train_set) < batch_size:
        raise ValueError(f"{len(train_set)} training samples do not fill one batch of {batch_size} "
                         "(training drops the incomplete last batch): use more samples or a smaller batch")
    loader = datasets.make_loader(train_set, batch_size, train=True, seed=seed)
    test = datasets.make_loader(test_set, 256, train=False, seed=seed)
    trainer = Trainer(
        lambda: build_model(variant), loader, build_loss(), epochs=epochs, lr=lr, lr_step=lr_step,
        lr_gamma=0.1, out_dir=out_dir, eval_data=test, accuracy_fn=class_accuracy, seed=seed, resume=True,
        progress=progress, tensorboard=False,
        meta={"variant": variant.name, "changes": variant.changes or {}, "seed": seed,
              "batch_size": batch_size, "lr": lr, "lr_step": lr_step, **(meta or {})},
    )
    history = trainer.fit()
    return trainer.module.eval(), history


def batches(dataset: Dataset, batch_size: int = 256):
    """``(x [T, B, *F], labels [B])`` over ``dataset`` in order (zero-padded in time)."""
    return datasets.make_loader(dataset, batch_size, train=False)


def accuracy(model: nn.Module, data) -> float:
    """Test accuracy (%) of ``model`` on batches ``data`` (classified by the time-averaged output)."""
    correct = count = 0
    with torch.no_grad():
        for x, labels in data:
            c, n = class_accuracy(model(x), labels)
            correct, count = correct + int(c), count + int(n)
    return 100 * correct / count


def parser(name: str, description: str, variants, quick: dict, full: dict) -> argparse.ArgumentParser:
    """The flags the three event studies share (each adds its own)."""
    p = argparse.ArgumentParser(prog=f"snnfast study {name}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=sorted(DATA), default=None,
                   help="event data set (default: ndigits, generated here; nmnist reads --data-dir)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding NMNIST/ (tonic's layout)")
    p.add_argument("--quick", action="store_true",
                   help=f"{quick['epochs']} epochs, batch {quick['batch_size']}, lr {quick['lr']} instead of "
                        f"Table 5's {full['epochs']}, batch {full['batch_size']}, lr {full['lr']}")
    p.add_argument("--variants", nargs="+", choices=list(variants), default=list(variants),
                   help=f"models to study (default: {' '.join(variants)})")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default runs/study-{name}-DATA[-quick])")
    p.add_argument("--models", type=Path, default=None,
                   help="folder of the trained models (default OUT/models; share one between studies)")
    p.add_argument("--fresh", action="store_true", help="discard the results and models in --out and start over")
    p.add_argument("--samples", type=int, default=None, help="use only the first N training and test samples")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights, the data order and the analysis")
    p.add_argument("--no-progress", action="store_true")
    return p


def resolve(args, quick: dict, full: dict, name: str) -> tuple[str, dict, Path, Path]:
    """The data set, schedule, results folder and models folder of a command line."""
    data = args.data or "nmnist"
    schedule = dict(quick if args.quick else full)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit(f"--epochs must be positive, got {args.epochs}")
        schedule["epochs"] = args.epochs
    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"--samples must be positive, got {args.samples}")
    out = args.out or Path("runs") / f"study-{name}-{data}{'-quick' if args.quick else ''}"
    if args.fresh and out.exists():
        shutil.rmtree(out)
    return data, schedule, out, args.models or out / "models"


def train_all(names, data: str, data_dir, schedule: dict, models: Path, *, seed: int, samples: int | None,
              progress: bool):
    """Trains (or loads) every model in ``names``; returns ``({name: model}, {name: history},
    train_set, test_set)``."""
    train_set, test_set = load(data, data_dir, schedule["time_window_ms"], samples)
    trained, histories = {}, {}
    for i, name in enumerate(names):
        if progress:
            print(f"[{i + 1}/{len(names)}] {VARIANTS[name].label}", flush=True)
        trained[name], histories[name] = train(
            VARIANTS[name], train_set, test_set, out_dir=models / name, seed=seed, progress=progress,
            meta={"data": data, "samples": samples, "time_window_ms": schedule["time_window_ms"]}, **schedule)
        if progress:
            print(f"    test accuracy {100 * histories[name][-1]['test_acc']:.1f} %", flush=True)
    return trained, histories, train_set, test_set
