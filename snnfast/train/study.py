"""snnfast study xor: the component study of the functional-roles paper (Yin et al.,
Table 6) on the delayed spiking XOR task: the baseline and four variants, each changing one
component, trained one after the other and printed beside the paper's accuracies.

Every variant trains in its own folder under --out with the Trainer's checkpoint each
epoch, so running the same command again after an interruption continues where it stopped
(--fresh starts over). Results: results.csv, results.md and, with matplotlib,
accuracy.png (test accuracy per epoch of every variant, and per readout step).
"""
from __future__ import annotations

import argparse
import csv
import importlib
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import xor
from . import builders
from .config import Setup, get_setup
from .metrics import StepAccuracy
from .checkpoint import RunError
from .trainer import Trainer


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # as Table 6 names it
    changes: dict  # fields of the XOR setup that differ from the baseline
    paper: float  # Table 6's XOR accuracy, %


VARIANTS = (
    Variant("baseline", "Baseline (learnable leak, hard reset)", {}, 77.5),
    Variant("no_leak", "Without leakage (beta = 1)", {"beta": 1.0}, 50.5),
    Variant("complete_leak", "Complete leakage (beta = 0)", {"beta": 0.0}, 50.3),
    Variant("no_reset", "Without reset", {"reset": "none"}, 96.1),
    Variant("recurrence", "With recurrence", {"recurrent": True}, 98.9),
)
# Not in Table 6, so not run by default (--variants names it): the recurrent variant with
# truncated BPTT through the recurrent spikes, against its exploding gradients (docs/training.md).
# Its paper column is Table 6's recurrence.
EXTRA_VARIANTS = (
    Variant("recurrence_detached", "With recurrence, detach_recurrent", {"recurrent": True, "detach_recurrent": True},
            98.9),
)

# Table 5: 150 epochs of 100 batches of 500, StepLR(50, 0.1). --quick keeps the batches, on
# 40 epochs with one decay after 20: about 8 minutes on 2 cores.
FULL = dict(epochs=150, lr_step=50)
QUICK = dict(epochs=40, lr_step=20)


def variant_setup(variant: Variant, epochs: int, lr_step: int) -> Setup:
    return get_setup("xor", epochs=epochs, lr_step=lr_step, **variant.changes)


def train_variant(variant: Variant, *, epochs: int, lr_step: int, out_dir: Path, seed: int = 0,
                  batches: int | None = None, progress: bool = True) -> tuple[list[dict], int, list[float]]:
    """Trains one variant (resuming from ``out_dir`` when it holds a checkpoint); returns the
    log rows of every epoch, the epoch kept (the lowest training loss, as DH-SNN's code keeps
    its model; the XOR data are new every epoch, so no test data choose it) and the kept
    network's test accuracy at each readout step."""
    setup = variant_setup(variant, epochs, lr_step)
    train, test = xor.train_and_test(setup.batch_size, batches or setup.data.get("batches", 100), seed)
    trainer = Trainer(
        lambda: builders.build_model(setup), train, builders.build_loss(setup), epochs=setup.epochs,
        lr=setup.lr, lr_step=setup.lr_step, lr_gamma=setup.lr_gamma, out_dir=out_dir,
        eval_data=test, accuracy_fn=StepAccuracy(xor.READOUT_STEPS), seed=seed, resume=True,
        progress=progress, tensorboard=False,
        meta={"setup": setup.as_dict(), "variant": variant.name, "seed": seed,
              "batches": batches or setup.data.get("batches", 100)},
        keep_best=True,
    )
    history = trainer.fit()
    kept = trainer.load_best()
    test.set_epoch(kept - 1)  # the test set that epoch was scored on
    return history, kept, step_accuracy(trainer.module, test)


def step_accuracy(model: torch.nn.Module, data) -> list[float]:
    """Test accuracy (%) at each step of ``xor.READOUT_STEPS``: where in the window a network
    loses accuracy (reacting late to the second pattern, or forgetting the first)."""
    counter = StepAccuracy(xor.READOUT_STEPS)
    model.eval()
    correct, count = 0, 0
    with torch.no_grad():
        for x, labels in data:
            correct = correct + counter.per_step(model(x), labels)
            count += labels.numel()
    return (100 * correct.double() / count).tolist()


def readout_step_numbers() -> list[int]:
    return list(range(xor.STEPS))[xor.READOUT_STEPS]


def summarize(variant: Variant, history: list[dict], kept: int, per_step: list[float]) -> dict:
    """The test accuracy of a run, in %: of the epoch kept (the one reported), of the last
    epoch and of the best one; and of the kept network at each readout step."""
    accuracies = [epoch["test_acc"] for epoch in history]
    summary = {
        "variant": variant.name, "label": variant.label, "paper": variant.paper,
        "kept": 100 * accuracies[kept - 1], "kept_epoch": kept,
        "final": 100 * accuracies[-1], "best": 100 * max(accuracies), "epochs": len(history),
        "minutes": sum(epoch["seconds"] for epoch in history) / 60,
    }
    summary.update({f"step_{t}": value for t, value in zip(readout_step_numbers(), per_step)})
    return summary


def table(rows: list[dict]) -> str:
    lines = ["| variant | paper (Table 6) | snnfast | epoch kept | last epoch | best epoch | epochs | minutes |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['paper']:.1f} % | {r['kept']:.1f} % | {r['kept_epoch']} "
                     f"| {r['final']:.1f} % | {r['best']:.1f} % | {r['epochs']} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def step_table(rows: list[dict]) -> str:
    """The kept network's test accuracy of every variant at each readout step."""
    steps = readout_step_numbers()
    lines = ["| variant | " + " | ".join(f"step {t}" for t in steps) + " |",
             "|---|" + "---:|" * len(steps)]
    for r in rows:
        lines.append(f"| {r['variant']} | " + " | ".join(f"{r[f'step_{t}']:.1f}" for t in steps) + " |")
    return "\n".join(lines)


def _ordering_checks() -> list:
    """Table 6's ordering for XOR as checks: (the variants each needs, whether the reported
    accuracies pass it, what fails)."""
    checks = []
    for name in ("no_leak", "complete_leak"):
        checks.append(((name,), lambda r, n=name: r[n] <= 60, lambda r, n=name: f"{n} reaches {r[n]:.1f} % (> 60 %)"))
    for name in ("no_reset", "recurrence"):
        checks.append(((name, "baseline"), lambda r, n=name: r[n] > r["baseline"],
                       lambda r, n=name: f"{n} ({r[n]:.1f} %) is not above the baseline ({r['baseline']:.1f} %)"))
    checks.append((("recurrence",), lambda r: r["recurrence"] >= 90,
                   lambda r: f"recurrence reaches {r['recurrence']:.1f} % (< 90 %)"))
    return checks


def check_ordering(rows: list[dict]) -> list[str]:
    """Where the reported (kept) accuracies break Table 6's ordering for XOR (empty if they
    keep it): no leak and complete leak at most 60 %, no reset and recurrence above the
    baseline, recurrence at least 90 %. Checks whose variants were not run are left out
    (unchecked_ordering names them)."""
    reported = {r["variant"]: r["kept"] for r in rows}
    return [problem(reported) for needs, holds, problem in _ordering_checks()
            if all(n in reported for n in needs) and not holds(reported)]


def unchecked_ordering(rows: list[dict]) -> list[str]:
    """The variants missing for the ordering checks that could not be made."""
    ran = {r["variant"] for r in rows}
    return sorted({n for needs, _, _ in _ordering_checks() for n in needs if n not in ran})


def ordering_summary(rows: list[dict]) -> str:
    """One line on Table 6's ordering: holds, does not hold, or could not be checked."""
    checks, missing = _ordering_checks(), unchecked_ordering(rows)
    made = sum(all(n not in missing for n in needs) for needs, _, _ in checks)
    if made == 0:
        return ("Table 6's ordering: not checked (it compares the variants; also run: " + ", ".join(missing) + ")")
    problems = check_ordering(rows)
    line = "Table 6's ordering: " + ("holds" if not problems else "does NOT hold: " + "; ".join(problems))
    if missing:
        line += f" ({made} of {len(checks)} checks; the others need: {', '.join(missing)})"
    return line


def paper_gaps(rows: list[dict], points: float = 10.0) -> list[str]:
    """The variants whose reported accuracy is more than ``points`` from Table 6's."""
    return [f"{r['label']}: {r['kept']:.1f} % against the paper's {r['paper']:.1f} %"
            for r in rows if abs(r["kept"] - r["paper"]) > points]


def plot(histories: dict, rows: list[dict], path: Path) -> bool:
    """Test accuracy per epoch of every variant, a dot on the epoch kept (left), and the kept
    networks' accuracy at each readout step (right); False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (by_epoch, by_step) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    steps = readout_step_numbers()
    summary = {r["variant"]: r for r in rows}
    for variant in VARIANTS + EXTRA_VARIANTS:
        if variant.name in histories:
            history = histories[variant.name]
            line, = by_epoch.plot([r["epoch"] for r in history], [100 * r["test_acc"] for r in history],
                                  label=variant.label)
            kept = summary[variant.name]
            by_epoch.plot([kept["kept_epoch"]], [kept["kept"]], marker="o", color=line.get_color())
            by_step.plot(steps, [summary[variant.name][f"step_{t}"] for t in steps], marker="o", ms=3,
                         color=line.get_color())
    for ax in (by_epoch, by_step):
        ax.axhline(50, color="grey", lw=0.8, ls=":")
        ax.set_ylim(40, 101)
    by_epoch.set_xlabel("epoch")
    by_epoch.set_ylabel(f"test accuracy, steps {steps[0]}-{steps[-1]} (%)")
    by_epoch.set_title("Delayed spiking XOR: the components of Table 6")
    by_epoch.legend(fontsize=8, loc="lower right")
    by_step.set_xlabel("readout step (the second pattern starts at step 190)")
    by_step.set_ylabel("test accuracy of the kept network (%)")
    by_step.set_title("Where in the window")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run(variants=VARIANTS, *, epochs: int, lr_step: int, out: Path, seed: int = 0,
        batches: int | None = None, progress: bool = True) -> list[dict]:
    """Trains ``variants`` one after the other under ``out``; writes and returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    rows, histories = [], {}
    for i, variant in enumerate(variants):
        if progress:
            print(f"[{i + 1}/{len(variants)}] {variant.label}", flush=True)
        started = time.perf_counter()
        history, kept, per_step = train_variant(variant, epochs=epochs, lr_step=lr_step,
                                                out_dir=out / variant.name, seed=seed, batches=batches,
                                                progress=progress)
        histories[variant.name] = history
        rows.append(summarize(variant, history, kept, per_step))
        if progress:
            print(f"    {rows[-1]['kept']:.1f} % (epoch {kept} kept)  last {rows[-1]['final']:.1f} %  "
                  f"({time.perf_counter() - started:.0f} s this call)", flush=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(table(rows) + "\n\nTest accuracy (%) of the kept network at each readout step:\n\n"
                                    + step_table(rows) + "\n")
    plot(histories, rows, out / "accuracy.png")
    return rows


# The other studies (the IMP and DA-LIF papers', the functional-roles paper's beyond
# Table 6), each in its own module with its own flags.
PAPER_STUDIES = {
    "imp-patterns": "snnfast.train.study_imp",
    "losses": "snnfast.train.study_losses",
    "dalif-ablation": "snnfast.train.study_dalif",
    "leakage": "snnfast.train.study_leakage",
    "firing": "snnfast.train.study_firing",
    "generalization": "snnfast.train.study_generalization",
    "landscape": "snnfast.train.study_landscape",
    "features": "snnfast.train.study_features",
    "robustness": "snnfast.train.study_robustness",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snnfast study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=("xor", *PAPER_STUDIES),
                   help="the study to run (snnfast study NAME --help for each of the others' flags)")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['epochs']} epochs, StepLR({QUICK['lr_step']}, 0.1) (about 8 minutes on 2 cores) "
                        f"instead of Table 5's {FULL['epochs']}, StepLR({FULL['lr_step']}, 0.1)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--variants", nargs="+", choices=[v.name for v in VARIANTS + EXTRA_VARIANTS], default=None,
                   help="run only these (default: Table 6's five; recurrence_detached: the recurrent variant "
                        "with detach_recurrent)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default runs/study-xor[-quick])")
    p.add_argument("--fresh", action="store_true", help="discard earlier runs in --out and start over")
    p.add_argument("--batches", type=int, default=None,
                   help="batches per epoch (default Table 5's 100; fewer for a smoke test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and the data (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or per-variant lines")
    return p


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in PAPER_STUDIES:
        return importlib.import_module(PAPER_STUDIES[argv[0]]).main(argv[1:])
    args = parser().parse_args(argv)
    schedule = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        if args.epochs < 1:
            raise SystemExit(f"--epochs must be positive, got {args.epochs}")
        schedule["epochs"] = args.epochs
    if args.batches is not None and args.batches < 1:
        raise SystemExit(f"--batches must be positive, got {args.batches}")
    out = args.out or Path("runs") / ("study-xor-quick" if args.quick else "study-xor")
    if args.fresh and out.exists():
        shutil.rmtree(out)
    chosen = args.variants or [v.name for v in VARIANTS]
    variants = [v for v in VARIANTS + EXTRA_VARIANTS if v.name in chosen]
    try:
        rows = run(variants, out=out, seed=args.seed, batches=args.batches, progress=not args.no_progress,
                   **schedule)
    except RunError as error:
        raise SystemExit(f"snnfast study: error: {error}\n{out} holds a study with other settings: "
                         "--fresh discards it, --out chooses another folder")
    print(f"\nDelayed spiking XOR, {schedule['epochs']} epochs, StepLR({schedule['lr_step']}, 0.1), "
          f"seed {args.seed}: test accuracy over steps 191-199 of the epoch with the lowest training loss\n")
    print(table(rows))
    print("\nTest accuracy (%) of the kept network at each readout step:\n")
    print(step_table(rows))
    print("\n" + ordering_summary(rows))
    gaps = paper_gaps(rows)
    if gaps:
        print("More than 10 points from Table 6 (docs/training.md discusses why): " + "; ".join(gaps))
    print(f"Results in {out}/ (results.md, results.csv, accuracy.png, one folder per variant)")
    return rows


if __name__ == "__main__":
    main()
