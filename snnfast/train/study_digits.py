"""What the static-image studies of the IMP and DA-LIF papers share (``snnfast study losses``
and ``snnfast study dalif-ablation``): the data (scikit-learn's bundled 8 x 8 digits for
--quick, CIFAR10/100 from --data-dir), a small spiking conv net, one resumable training run
through the Trainer, and the test accuracy of a trained network at each time step.
"""
from __future__ import annotations

import argparse
import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Subset

from .. import data as datasets
from ..models._blocks import conv_bn
from ..nn import TimeDistributed
from .metrics import StepAccuracy, class_accuracy
from .trainer import Trainer

# --data-dir data sets: name -> (dataset class, conv widths). The digits need no files.
DATA = {
    "digits": (datasets.Digits, (16, 32, 64)),
    "cifar10": (datasets.CIFAR10, (64, 128, 256)),
    "cifar100": (datasets.CIFAR100, (64, 128, 256)),
}


class StudyConvNet(nn.Module):
    """conv3x3(w1) - neuron - conv3x3(w2) - neuron - avgpool2 - conv3x3(w3) - neuron - avgpool2 -
    global average pooling to 2 x 2 - Linear(classes), each conv followed by BatchNorm; input
    ``[T, B, C, H, W]``, per-step logits ``[T, B, classes]``. Three neuron layers, so that the
    learned decays can be compared across depth."""

    def __init__(self, in_channels: int, num_classes: int, widths, make_neuron: Callable[[], nn.Module]):
        super().__init__()
        w1, w2, w3 = widths
        pool = lambda: TimeDistributed(nn.AvgPool2d(2))  # noqa: E731
        self.features = nn.Sequential(
            conv_bn(in_channels, w1, 3, padding=1), make_neuron(),
            conv_bn(w1, w2, 3, padding=1), make_neuron(), pool(),
            conv_bn(w2, w3, 3, padding=1), make_neuron(), pool(),
            TimeDistributed(nn.AdaptiveAvgPool2d(2), nn.Flatten()),
        )
        self.classifier = nn.Linear(4 * w3, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


def load(name: str, data_dir: Path | None, samples: int | None = None):
    """(train, test, in_channels, classes, widths) of the study's data set ``name``; with
    ``samples``, only the first that many images of each split (a smoke test)."""
    try:
        cls, widths = DATA[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATA)}") from None
    options = {"augment": True} if name != "digits" else {}
    train = cls(data_dir, "train", **options)
    test = cls(data_dir, "test")
    if samples is not None:
        train, test = (Subset(split, range(min(samples, len(split)))) for split in (train, test))
    image, _ = train[0]
    return train, test, image.shape[0], cls.n_classes, widths


class LastStepAccuracy:
    """Classifies by the output of the last step, as LTS does (the IMP paper)."""

    def __call__(self, output: torch.Tensor, labels: torch.Tensor):
        return (output[-1].argmax(-1) == labels).sum(), labels.numel()


@dataclass
class Run:
    history: list  # the Trainer's log rows, one per epoch
    per_step: list  # test accuracy (%) of the final network from the output of each step alone
    mean_acc: float  # test accuracy (%) from the output averaged over the steps
    last_acc: float  # test accuracy (%) from the output of the last step
    model: nn.Module


def train_run(make_model: Callable[[], nn.Module], loss: nn.Module, train_set, test_set, *, T: int | None,
              epochs: int, lr: float, batch_size: int, out_dir: Path, seed: int, last_step: bool = False,
              progress: bool = True, collate=None, lr_step: int | None = None, meta: dict | None = None) -> Run:
    """Trains one network with Adam and one tenfold decay after two thirds of the epochs
    (the Trainer's StepLR; ``lr_step`` sets another), resuming from ``out_dir`` when it holds a
    checkpoint (``meta``: the settings a resumed run must match); the epoch accuracy is of the
    time-averaged output, or of the last step when ``last_step`` (LTS). Images are repeated over
    ``T`` steps; ``collate`` replaces that for data that come as sequences."""
    if len(train_set) < batch_size:
        raise ValueError(f"{len(train_set)} training samples do not fill one batch of {batch_size} "
                         "(training drops the incomplete last batch): use more samples")
    collate = collate or datasets.StaticCollate(T, "direct")
    train = datasets.make_loader(train_set, batch_size, train=True, collate_fn=collate, seed=seed)
    test = datasets.make_loader(test_set, 256, train=False, collate_fn=collate, seed=seed)
    trainer = Trainer(make_model, train, loss, epochs=epochs, lr=lr,
                      lr_step=lr_step or max(1, (2 * epochs) // 3), lr_gamma=0.1, out_dir=out_dir,
                      eval_data=test, accuracy_fn=LastStepAccuracy() if last_step else class_accuracy,
                      seed=seed, resume=True, progress=progress, tensorboard=False, meta=meta)
    history = trainer.fit()
    per_step, mean_acc, last_acc = step_accuracies(trainer.module, test)
    return Run(history, per_step, mean_acc, last_acc, trainer.module)


def step_accuracies(model: nn.Module, data) -> tuple[list[float], float, float]:
    """Test accuracy (%) from each step's output alone, from the mean over steps, from the last."""
    counter = StepAccuracy(slice(None))
    model.eval()
    per_step, mean, last, count = 0, 0, 0, 0
    with torch.no_grad():
        for x, labels in data:
            output = model(x)
            per_step = per_step + counter.per_step(output, labels)
            mean += int(class_accuracy(output, labels)[0])
            last += int(LastStepAccuracy()(output, labels)[0])
            count += labels.numel()
    return (100 * per_step.double() / count).tolist(), 100 * mean / count, 100 * last / count


def write_csv(rows: list[dict], path: Path) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def matplotlib_pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def parser(name: str, description: str, quick: dict, full: dict, steps) -> argparse.ArgumentParser:
    """The flags the digits studies share (each adds its own)."""
    p = argparse.ArgumentParser(prog=f"snnfast study {name}", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"{quick['epochs']} epochs at lr {quick['lr']} on the digits (a few minutes on 2 cores) "
                        f"instead of {full['epochs']} at lr {full['lr']}")
    p.add_argument("--data", choices=sorted(DATA), default=None,
                   help="data set (default: digits, or cifar10 when --data-dir is given)")
    p.add_argument("--data-dir", type=Path, default=None, help="folder holding cifar-10-batches-py/ etc.")
    p.add_argument("--T", type=int, nargs="+", default=list(steps),
                   help=f"time steps (default {' '.join(map(str, steps))})")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--out", type=Path, default=None, help=f"results folder (default runs/study-{name}[-quick])")
    p.add_argument("--fresh", action="store_true", help="discard earlier runs in --out and start over")
    p.add_argument("--samples", type=int, default=None,
                   help="use only the first N training and test images (a smoke test)")
    p.add_argument("--no-progress", action="store_true")
    return p


def resolve(args, quick: dict, full: dict, name: str) -> tuple[str, dict, Path]:
    """The data set, schedule and results folder of a digits study's command line."""
    data = args.data or ("cifar10" if args.data_dir is not None else "digits")
    if data != "digits" and args.data_dir is None:
        raise SystemExit(f"--data {data} needs --data-dir (the folder holding its files)")
    schedule = dict(quick if args.quick else full)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit(f"--epochs must be positive, got {args.epochs}")
        schedule["epochs"] = args.epochs
    if args.samples is not None and args.samples < 1:
        raise SystemExit(f"--samples must be positive, got {args.samples}")
    if any(T < 1 for T in args.T):
        raise SystemExit(f"--T must be positive, got {args.T}")
    suffix = ("" if data == "digits" else f"-{data}") + ("-quick" if args.quick else "")
    out = args.out or Path("runs") / f"study-{name}{suffix}"
    if args.fresh and out.exists():
        shutil.rmtree(out)
    return data, schedule, out
