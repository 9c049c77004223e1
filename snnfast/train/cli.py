"""``python -m snnfast.train <setup> [flags]``: one command per setup of the functional-roles
paper; multi-process with ``torchrun --nproc_per_node N -m snnfast.train ...``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import data as datasets
from ..data import xor
from . import distributed, hooks, paper_setups
from .config import PAPER_SETUPS, SETUPS, Setup, get_setup
from .metrics import StepAccuracy, class_accuracy

LEAKS = {"none": 1.0, "complete": 0.0, "learnable": "learnable"}


def _leak(value: str):
    if value in LEAKS:
        return LEAKS[value]
    try:
        beta = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--leak takes none (beta = 1), complete (beta = 0), learnable or a number, not {value!r}"
        ) from None
    if not 0.0 <= beta <= 1.0:
        raise argparse.ArgumentTypeError(f"--leak {beta}: beta must be in [0, 1]")
    return beta


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m snnfast.train", description=__doc__)
    p.add_argument("setup", choices=sorted([*SETUPS, *PAPER_SETUPS]),
                   help="benchmark (the functional-roles paper's Tables 4 and 5; imp_* and dalif_*: the IMP "
                        "and DA-LIF papers, docs/training.md)")
    variant = p.add_argument_group("variant (default: the paper's baseline)")
    variant.add_argument("--leak", type=_leak, default=None,
                         help="none (beta = 1), complete (beta = 0), learnable, or a fixed beta")
    variant.add_argument("--reset", choices=("hard", "soft", "none"), default=None)
    variant.add_argument("--recurrent", action="store_true", help="recurrent hidden layers")
    variant.add_argument("--imp", action="store_true", help="learnable initial membrane potential")
    variant.add_argument("--dalif", action="store_true", help="DA-LIF: learnable alpha and beta")
    variant.add_argument("--loss", choices=("sdt", "tet", "tets", "lts"), default=None)
    run = p.add_argument_group("run")
    run.add_argument("--T", type=int, default=None, help="time steps (frames)")
    run.add_argument("--epochs", type=int, default=None)
    run.add_argument("--batch-size", type=int, default=None, help="over all processes")
    run.add_argument("--lr", type=float, default=None)
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    run.add_argument("--data-dir", type=Path, default=Path("data"))
    run.add_argument("--download", action="store_true", help="let tonic fetch missing datasets")
    run.add_argument("--out", type=Path, default=None, help="run folder (default runs/<setup>)")
    run.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--workers", type=int, default=0, help="data-loading processes")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def build_data(setup: Setup, args, context: distributed.Context):
    """Training and evaluation batches for ``setup`` (sharded over the processes)."""
    if setup.dataset == "xor":
        return xor.train_and_test(setup.batch_size, setup.data.get("batches", 100), args.seed)
    options = dict(setup.data)
    encoding = options.pop("encoding", None)
    augment = options.pop("augment", False)
    cls = datasets.DATASETS[setup.dataset]
    common = {"download": args.download}
    if encoding is None:  # event data: T is the dataset's
        common["T"] = setup.T
        collate = datasets.time_major_collate
    else:
        collate = datasets.StaticCollate(setup.T, encoding)
        if setup.dataset == "cifar10":
            common["normalize"] = encoding == "direct"
    train_options = {**common, **options}
    if augment:
        train_options["augment"] = True
    loader = dict(collate_fn=collate, seed=args.seed, num_workers=args.workers,
                  pin_memory=context.device.type == "cuda")
    train = datasets.make_loader(cls(args.data_dir, "train", **train_options), setup.batch_size,
                                 train=True, **loader)
    test = datasets.make_loader(cls(args.data_dir, "test", **common, **options), setup.batch_size,
                                train=False, **loader)
    return train, test


def main(argv=None):
    args = parser().parse_args(argv)
    setup = get_setup(args.setup, T=args.T, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, beta=args.leak, reset=args.reset, loss=args.loss,
                      recurrent=args.recurrent or None, imp=args.imp or None,
                      dalif=args.dalif or None)
    context = distributed.setup(args.device)
    try:
        train, test = build_data(setup, args, context)
        accuracy = StepAccuracy(xor.READOUT_STEPS) if setup.dataset == "xor" else class_accuracy
        trainer = paper_setups.trainer_class(setup)(
            lambda: hooks.build_model(setup, args), train, hooks.build_loss(setup, args),
            epochs=setup.epochs, lr=setup.lr, lr_step=setup.lr_step, lr_gamma=setup.lr_gamma,
            out_dir=args.out or Path("runs") / setup.name, eval_data=test, accuracy_fn=accuracy,
            device=context.device, seed=args.seed, resume=args.resume,
            progress=not args.no_progress,
            meta={"setup": setup.as_dict(), "argv": list(sys.argv if argv is None else argv)},
        )
        return trainer.fit()
    finally:
        distributed.teardown()
