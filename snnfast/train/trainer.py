"""A model-agnostic training loop: any optimizer and schedule (Adam + StepLR by default),
progress bars, a CSV log (TensorBoard when installed), an atomic checkpoint every epoch, exact
resume, and DistributedDataParallel when the process group is up (see
``snnfast.train.distributed.setup``)."""
from __future__ import annotations

import csv
import math
import shutil
import time
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from ..utils.seeding import epoch_seed, seed_everything
from . import checkpoint
from .checkpoint import RunError
from .distributed import Context, current
from .metrics import class_accuracy

CHECKPOINT = "checkpoint.pt"
BEST = "best.pt"  # with keep_best: the weights of the epoch with the lowest training loss
LOG = "log.csv"
LOG_FIELDS = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")


def adam(lr: float | None) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """The Trainer's default optimizer: Adam over the model's parameters at ``lr``."""
    if lr is None:
        raise TypeError("Trainer: lr is required for the default Adam optimizer (or pass optimizer=)")
    return lambda model: torch.optim.Adam(model.parameters(), lr=lr)


def step_lr(step: int | None, gamma: float | None) -> Callable[[torch.optim.Optimizer], object]:
    """The Trainer's default schedule: the learning rate times ``gamma`` every ``step`` epochs."""
    if step is None or gamma is None:
        raise TypeError("Trainer: lr_step and lr_gamma are required for the default StepLR schedule "
                        "(or pass scheduler=)")
    return lambda optimizer: torch.optim.lr_scheduler.StepLR(optimizer, step, gamma)


class Trainer:
    """Trains ``model_factory()`` on ``train_data`` with ``loss_fn(output, labels)``.

    ``train_data`` / ``eval_data``: iterables of ``(x, labels)`` batches (``x`` time-major
    ``[T, B, *F]``), with an optional ``set_epoch(epoch)`` that is called before each epoch
    (``snnfast.data.make_loader`` and ``DelayedXOR`` have one). Under torch.distributed they
    must already be sharded per rank (both of those are).
    ``accuracy_fn(output, labels) -> (correct, count)``; the default classifies by the output
    averaged over time.

    The model is built after seeding every generator with ``seed``, so its initial weights
    depend on ``seed`` only. With ``resume=True`` and a checkpoint in ``out_dir``, the run
    continues after the last finished epoch with the saved model, optimizer, scheduler and
    random states: the result is bit for bit the one of an uninterrupted run. ``meta`` is
    recorded in the checkpoint and describes the run: a resumed run must have the same
    ``meta`` (``argv`` aside; its ``epochs`` may grow, to train on), or it would continue
    one run under another's settings. ``resume=False`` refuses an ``out_dir`` that holds a
    run (``clear_run`` discards one).
    ``keep_best=True`` also keeps the weights of the epoch with the lowest training loss in
    ``best.pt`` (``best_epoch()``, ``load_best()``).

    ``optimizer(model)`` and ``scheduler(optimizer)`` build the optimizer and the learning-rate
    schedule (stepped once per epoch). Without them the Trainer uses Adam(lr) and
    StepLR(lr_step, lr_gamma), the functional-roles paper's Table 5; ``lr``, ``lr_step`` and
    ``lr_gamma`` are needed only for those defaults.
    """

    def __init__(
        self,
        model_factory: Callable[[], nn.Module],
        train_data: Iterable,
        loss_fn: Callable,
        *,
        epochs: int,
        out_dir,
        lr: float | None = None,
        lr_step: int | None = None,
        lr_gamma: float | None = None,
        eval_data: Iterable | None = None,
        accuracy_fn: Callable = class_accuracy,
        device: str | torch.device = "cpu",
        seed: int = 0,
        resume: bool = False,
        progress: bool = True,
        tensorboard: bool = True,
        meta: dict | None = None,
        keep_best: bool = False,
        optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
        scheduler: Callable[[torch.optim.Optimizer], object] | None = None,
    ):
        self.context: Context = current(device)
        self.device = self.context.device
        self.train_data, self.eval_data = train_data, eval_data
        self.loss_fn, self.accuracy_fn = loss_fn, accuracy_fn
        self.epochs, self.progress = int(epochs), progress
        self.keep_best = keep_best
        self.out_dir = Path(out_dir)
        self.meta = dict(meta or {})
        self.history: list[dict] = []
        self.start_epoch = 0
        if self.epochs < 0:
            raise ValueError(f"epochs must be 0 or more, got {epochs}")
        path = self.out_dir / CHECKPOINT
        if self.context.is_main:
            if not resume and run_files(self.out_dir):
                raise FileExistsError(
                    f"{self.out_dir} already holds a run ({', '.join(run_files(self.out_dir))}): resume it "
                    "(--resume), discard it (--fresh) or choose another folder (--out)")
            self.out_dir.mkdir(parents=True, exist_ok=True)
            checkpoint.remove_stale_temporaries(path)
            checkpoint.remove_stale_temporaries(self.out_dir / BEST)

        seed_everything(seed)
        model = model_factory().to(self.device)
        # Different dropout / encoding draws per rank, the same on every run.
        seed_everything(epoch_seed(seed, 1_000_000 + self.context.rank))
        self.optimizer = (optimizer or adam(lr))(model)
        self.scheduler = (scheduler or step_lr(lr_step, lr_gamma))(self.optimizer)
        if resume and path.is_file():
            self._restore(model, checkpoint.load(path), path)
        elif resume and progress and self.context.is_main:
            tqdm.write(f"no {CHECKPOINT} in {self.out_dir}: starting a new run")
        self.module = model
        if self.context.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.model = model
        self.writer = self._tensorboard() if tensorboard and self.context.is_main else None

    # ------------------------------------------------------------------ public

    def fit(self) -> list[dict]:
        """Runs the remaining epochs; returns the log rows of all epochs so far."""
        for epoch in range(self.start_epoch, self.epochs):
            started = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self._run(epoch, train=True)
            self.scheduler.step()
            test_loss = test_acc = float("nan")
            if self.eval_data is not None:
                test_loss, test_acc = self._run(epoch, train=False)
            row = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss, "train_acc": train_acc,
                   "test_loss": test_loss, "test_acc": test_acc,
                   "seconds": time.perf_counter() - started}
            self.history.append(row)
            self._log(row)
            if self.keep_best and self.best_epoch() == epoch + 1:
                # Before the checkpoint: a crash between the two redoes this epoch, which
                # rewrites the same weights.
                self._save_best(epoch + 1)
            self._save(epoch + 1)
        if self.writer is not None:
            self.writer.flush()
        return self.history

    def best_epoch(self) -> int | None:
        """The epoch (from 1) with the lowest training loss so far; None before the first.
        With data drawn afresh every epoch (the XOR task) the training loss is measured on
        unseen samples, so choosing by it uses no test data."""
        finished = [r for r in self.history if math.isfinite(r["train_loss"])]
        return min(finished, key=lambda r: r["train_loss"])["epoch"] if finished else None

    def load_best(self) -> int:
        """Loads the weights saved by keep_best into the model; returns their epoch."""
        path = self.out_dir / BEST
        if not path.is_file():
            raise FileNotFoundError(f"no {BEST} in {self.out_dir}: the run was not trained with keep_best "
                                    "(a run of an older snnfast?); start it over (snnfast study: --fresh)")
        state = checkpoint.load(path)
        self.module.load_state_dict(state["model"])
        return int(state["epoch"])

    def state_dict(self) -> dict:
        """The model's weights (without a DistributedDataParallel wrapper)."""
        return self.module.state_dict()

    # ------------------------------------------------------------------ epochs

    def _run(self, epoch: int, train: bool) -> tuple[float, float]:
        data = self.train_data if train else self.eval_data
        if hasattr(data, "set_epoch"):
            data.set_epoch(epoch)
        self.model.train(train)
        totals = torch.zeros(4, dtype=torch.float64, device=self.device)  # loss, batches, correct, count
        bar = tqdm(data, total=_length(data), leave=False, dynamic_ncols=True,
                   desc=f"{'train' if train else 'test'} {epoch + 1}/{self.epochs}",
                   disable=not self.progress or not self.context.is_main)
        with torch.set_grad_enabled(train):
            for step, (x, labels) in enumerate(bar):
                x = x.to(self.device, non_blocking=True)
                labels = labels.to(self.device, non_blocking=True)
                output = self.model(x)
                loss = self.loss_fn(output, labels)
                if train:
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.optimizer.step()
                correct, count = self.accuracy_fn(output.detach(), labels)
                totals += torch.stack([loss.detach().double(), totals.new_tensor(1.0),
                                       torch.as_tensor(correct, dtype=torch.float64, device=self.device),
                                       torch.as_tensor(count, dtype=torch.float64, device=self.device)])
                if step % 10 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{(totals[0] / totals[1]).item():.4f}")
        if self.context.distributed:
            dist.all_reduce(totals)
        loss_sum, batches, correct, count = totals.tolist()
        return loss_sum / max(batches, 1), correct / count if count else float("nan")

    # ------------------------------------------------------------------ logs

    def _log(self, row: dict) -> None:
        if not self.context.is_main:
            return
        path = self.out_dir / LOG
        new = not path.is_file()
        with open(path, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            if new:
                writer.writeheader()
            writer.writerow({k: _fmt(row[k]) for k in LOG_FIELDS})
        if self.writer is not None:
            for key in LOG_FIELDS[1:]:
                if not math.isnan(row[key]):
                    self.writer.add_scalar(key, row[key], row["epoch"])
        if self.progress:
            tqdm.write(f"epoch {row['epoch']}/{self.epochs}  lr {row['lr']:.3g}  "
                       f"train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
                       f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  "
                       f"{row['seconds']:.1f} s")

    def _tensorboard(self):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is optional
            return None
        return SummaryWriter(str(self.out_dir / "tensorboard"), purge_step=self.start_epoch + 1)

    # ------------------------------------------------------------------ checkpoints

    def _save(self, epochs_done: int) -> None:
        rng = checkpoint.rng_state(self.device)
        if self.context.distributed:
            gathered = [None] * self.context.world_size
            dist.all_gather_object(gathered, rng)
            rng = gathered
        else:
            rng = [rng]
        if self.context.is_main:
            state = {
                "epoch": epochs_done,
                "model": self.module.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": rng,
                "history": self.history,
                "meta": self.meta,
            }
            checkpoint.save_atomic(state, self.out_dir / CHECKPOINT)
        if self.context.distributed:
            dist.barrier()

    def _save_best(self, epoch: int) -> None:
        if self.context.is_main:
            checkpoint.save_atomic({"epoch": epoch, "model": self.module.state_dict()}, self.out_dir / BEST)
        if self.context.distributed:
            dist.barrier()

    def _restore(self, model: nn.Module, state: dict, path: Path) -> None:
        missing = [key for key in ("epoch", "model", "optimizer", "scheduler", "rng", "history") if key not in state]
        if missing:
            raise RunError(
                f"{path} is not a checkpoint of snnfast's Trainer (no {', '.join(missing)}); delete it, "
                "or start over (--fresh) or in another folder (--out)")
        saved_meta = state.get("meta", {})
        changed = _meta_changes(saved_meta, self.meta)
        if changed:
            raise RunError(
                f"{path} was trained with other settings than these: {'; '.join(changed)}. A resumed run "
                "continues with the settings it started with: drop the flags that differ, or start a "
                "new run (--fresh, or another --out)")
        done = int(state["epoch"])
        if done > self.epochs:
            raise RunError(f"{path} has {done} epochs done, more than epochs = {self.epochs}: pass at least "
                           f"{done} to continue it (or --fresh to start over)")
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as error:
            recorded = saved_meta.get("setup", saved_meta) or "nothing (no meta)"
            raise RunError(
                f"{path} holds another network than this one: {_first_line(error)}. It records the "
                f"setup: {recorded}. Resume it with that setup, or start a new run (--fresh, or another "
                "--out)") from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        rng = state["rng"]
        if len(rng) != self.context.world_size and self.context.is_main:
            tqdm.write(f"resuming {len(rng)}-process random state on {self.context.world_size} "
                       "processes: the run continues, but not bit for bit")
        checkpoint.set_rng_state(rng[self.context.rank % len(rng)], self.device)
        self.start_epoch = done
        self.history = list(state["history"])
        if self.context.is_main:
            _truncate_log(self.out_dir / LOG, self.start_epoch)
            if done == self.epochs:
                tqdm.write(f"{path}: all {done} epochs are done; pass more epochs to train on")


def run_files(out_dir: Path) -> list[str]:
    """The files of a Trainer's run in ``out_dir`` (empty where there is none)."""
    names = (CHECKPOINT, BEST, LOG, "tensorboard")
    return [name for name in names if (Path(out_dir) / name).exists()]


def clear_run(out_dir) -> None:
    """Deletes the files of a Trainer's run in ``out_dir`` (nothing else there)."""
    for name in run_files(Path(out_dir)):
        target = Path(out_dir) / name
        # Missing is fine: under torchrun every process clears the folder.
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)


def _flatten(meta: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in meta.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _meta_changes(saved: dict, new: dict) -> list[str]:
    """'key saved -> new' for each entry of both that differs; argv, epochs and a setup's
    notes (prose, which may change between versions) aside."""
    saved, new = _flatten(saved), _flatten(new)
    ignored = lambda key: key == "argv" or key.rsplit(".", 1)[-1] in ("epochs", "notes")  # noqa: E731
    return [f"{key} {saved[key]!r} -> {new[key]!r}" for key in sorted(saved.keys() & new.keys())
            if not ignored(key) and _comparable(saved[key]) != _comparable(new[key])]


def _comparable(value):
    # A checkpoint stores tuples as lists.
    return list(value) if isinstance(value, tuple) else value


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return " ".join(lines[:3])[:400]


def _length(data):
    try:
        return len(data)
    except TypeError:
        return None


def _fmt(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def _truncate_log(path: Path, epochs_done: int) -> None:
    """Drops log rows of epochs after the checkpoint (written before a crash, redone now)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
        writer.writeheader()
        writer.writerows(r for r in rows if int(r["epoch"]) <= epochs_done)
