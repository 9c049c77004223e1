"""snnfast train SETUP [flags]: trains one setup of the functional-roles paper (Yin et al.,
Tables 4 and 5) in the run folder --out, with a checkpoint after every epoch.
Multi-process: torchrun --nproc_per_node N -m snnfast.train SETUP [flags]."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import data as datasets
from ..data import xor
from . import builders, distributed, paper_setups
from .config import PAPER_SETUPS, SETUPS, Setup, get_setup
from .metrics import StepAccuracy, class_accuracy
from .trainer import CHECKPOINT, RunError, Trainer, clear_run, run_files

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


def _number(kind, *, allow_zero: bool = False):
    """An argparse type: a positive (or, with allow_zero, non-negative) int or float."""
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number ({kind.__name__}), got {value!r}") from None
        if number < 0 or (number == 0 and not allow_zero):
            raise argparse.ArgumentTypeError(f"must be {'0 or more' if allow_zero else 'positive'}, got {value}")
        return number

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snnfast train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setup", choices=sorted([*SETUPS, *PAPER_SETUPS]),
                   help="benchmark (the functional-roles paper's Tables 4 and 5; imp_* and dalif_*: the IMP "
                        "and DA-LIF papers, docs/training.md)")
    variant = p.add_argument_group("variant (default: the paper's baseline)")
    variant.add_argument("--leak", type=_leak, default=None,
                         help="none (beta = 1), complete (beta = 0), learnable, or a fixed beta")
    variant.add_argument("--reset", choices=("hard", "soft", "none"), default=None,
                         help="the neuron's reset (default hard)")
    variant.add_argument("--recurrent", action="store_true", help="recurrent hidden layers")
    variant.add_argument("--detach-recurrent", action="store_true",
                         help="with --recurrent: truncated BPTT through the recurrent spikes (the gradient "
                              "stops at o_{t-1} in o_{t-1} V^T; V still learns)")
    variant.add_argument("--imp", action="store_true", help="learnable initial membrane potential")
    variant.add_argument("--dalif", action="store_true", help="DA-LIF: learnable alpha and beta")
    variant.add_argument("--loss", choices=("sdt", "tet", "tets", "lts"), default=None,
                         help="the loss over time steps (default the setup's: tet for xor, sdt otherwise)")
    run = p.add_argument_group("run (default: the setup's, Table 5)")
    run.add_argument("--T", type=_number(int), default=None,
                     help="time steps (frames); not for xor, whose sequences are 200 steps")
    run.add_argument("--epochs", type=_number(int), default=None,
                     help="epochs in all (with --resume: train on until this many are done)")
    run.add_argument("--batch-size", type=_number(int), default=None, help="over all processes")
    run.add_argument("--lr", type=_number(float), default=None, help="Adam's learning rate")
    run.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to train (default cpu)")
    run.add_argument("--data-dir", type=Path, default=Path("data"),
                     help="the datasets' folder (default data/)")
    run.add_argument("--download", action="store_true", help="let tonic fetch missing datasets")
    run.add_argument("--out", type=Path, default=None, help="run folder (default runs/<setup>)")
    start = run.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint.pt, with the settings it started with")
    start.add_argument("--fresh", action="store_true",
                       help="discard the run in --out (checkpoint, log, TensorBoard events) and start over")
    run.add_argument("--seed", type=int, default=0, help="seed of the weights, the data order and dropout (default 0)")
    run.add_argument("--workers", type=_number(int, allow_zero=True), default=0, help="data-loading processes (default 0)")
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
    p = parser()
    args = p.parse_args(argv)
    if args.detach_recurrent and not args.recurrent:
        p.error("--detach-recurrent needs --recurrent (it cuts the gradient through the recurrent spikes)")
    if args.setup == "xor" and args.T is not None:
        p.error(f"--T {args.T}: the XOR task's sequences have a fixed length of {xor.STEPS} steps")
    out = args.out or Path("runs") / args.setup
    if args.resume and not (out / CHECKPOINT).is_file():
        p.error(f"--resume: there is no {CHECKPOINT} in {out} to resume"
                + (f" (it holds {', '.join(run_files(out))}: start over with --fresh)" if run_files(out)
                   else "; drop --resume to start a new run"))
    if args.fresh:
        clear_run(out)
    setup = get_setup(args.setup, T=args.T, epochs=args.epochs, batch_size=args.batch_size,
                      lr=args.lr, beta=args.leak, reset=args.reset, loss=args.loss,
                      recurrent=args.recurrent or None, detach_recurrent=args.detach_recurrent or None,
                      imp=args.imp or None,
                      dalif=args.dalif or None)
    context = distributed.setup(args.device)
    try:
        train, test = build_data(setup, args, context)
        trainer = _trainer(p, setup, args, argv, out, train, test, context)
        return trainer.fit()
    finally:
        distributed.teardown()


def _trainer(p, setup, args, argv, out, train, test, context) -> Trainer:
    """The Trainer of the run; what stops it from starting (a run already in the folder, a
    checkpoint that does not fit) ends the command with its message, as argparse does."""
    try:
        accuracy = StepAccuracy(xor.READOUT_STEPS) if setup.dataset == "xor" else class_accuracy
        return Trainer(
            lambda: builders.build_model(setup, args), train, builders.build_loss(setup, args),
            epochs=setup.epochs, lr=setup.lr, lr_step=setup.lr_step, lr_gamma=setup.lr_gamma,
            out_dir=out, eval_data=test, accuracy_fn=accuracy,
            device=context.device, seed=args.seed, resume=args.resume,
            progress=not args.no_progress,
            meta={"setup": setup.as_dict(), "seed": args.seed, "argv": list(sys.argv if argv is None else argv)},
            **paper_setups.trainer_options(setup),
        )
    except (FileExistsError, RunError) as error:
        p.exit(2, f"{p.prog}: error: {error}\n")
