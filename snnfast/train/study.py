"""``snnfast study xor``: the component study of the functional-roles paper (Yin et al.,
Table 6) on the delayed spiking XOR task: the baseline and four variants, each changing one
component, trained one after the other and printed beside the paper's accuracies.

Every variant trains in its own folder under ``--out`` with the Trainer's checkpoint each
epoch, so running the same command again after an interruption continues where it stopped
(``--fresh`` starts over). Results: ``results.csv``, ``results.md`` and, with matplotlib,
``accuracy.png`` (test accuracy per epoch of every variant).
"""
from __future__ import annotations

import argparse
import csv
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..data import xor
from . import hooks
from .config import Setup, get_setup
from .metrics import StepAccuracy
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

# Table 5: 150 epochs of 100 batches of 500, StepLR(50, 0.1). --quick keeps the batches, on
# 40 epochs with one decay after 20: about 8 minutes on 2 cores.
FULL = dict(epochs=150, lr_step=50)
QUICK = dict(epochs=40, lr_step=20)


def variant_setup(variant: Variant, epochs: int, lr_step: int) -> Setup:
    return get_setup("xor", epochs=epochs, lr_step=lr_step, **variant.changes)


def train_variant(variant: Variant, *, epochs: int, lr_step: int, out_dir: Path, seed: int = 0,
                  batches: int | None = None, progress: bool = True) -> list[dict]:
    """Trains one variant (resuming from ``out_dir`` when it holds a checkpoint); returns the
    log rows of every epoch."""
    setup = variant_setup(variant, epochs, lr_step)
    train, test = xor.train_and_test(setup.batch_size, batches or setup.data.get("batches", 100), seed)
    trainer = Trainer(
        lambda: hooks.build_model(setup), train, hooks.build_loss(setup), epochs=setup.epochs,
        lr=setup.lr, lr_step=setup.lr_step, lr_gamma=setup.lr_gamma, out_dir=out_dir,
        eval_data=test, accuracy_fn=StepAccuracy(xor.READOUT_STEPS), seed=seed, resume=True,
        progress=progress, tensorboard=False, meta={"setup": setup.as_dict(), "variant": variant.name},
    )
    return trainer.fit()


def summarize(variant: Variant, history: list[dict]) -> dict:
    """The final and the best test accuracy of a run, in %."""
    accuracies = [row["test_acc"] for row in history]
    return {
        "variant": variant.name, "label": variant.label, "paper": variant.paper,
        "final": 100 * accuracies[-1], "best": 100 * max(accuracies), "epochs": len(history),
        "minutes": sum(row["seconds"] for row in history) / 60,
    }


def table(rows: list[dict]) -> str:
    lines = ["| variant | paper (Table 6) | snnfast final | snnfast best | epochs | minutes |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['paper']:.1f} % | {r['final']:.1f} % | {r['best']:.1f} % "
                     f"| {r['epochs']} | {r['minutes']:.1f} |")
    return "\n".join(lines)


def check_ordering(rows: list[dict]) -> list[str]:
    """Where the final accuracies break Table 6's ordering for XOR (empty if they keep it):
    no leak and complete leak at most 60 %, no reset and recurrence above the baseline,
    recurrence at least 90 %."""
    final = {r["variant"]: r["final"] for r in rows}
    problems = []
    for name in ("no_leak", "complete_leak"):
        if name in final and final[name] > 60:
            problems.append(f"{name} reaches {final[name]:.1f} % (> 60 %)")
    for name in ("no_reset", "recurrence"):
        if name in final and "baseline" in final and final[name] <= final["baseline"]:
            problems.append(f"{name} ({final[name]:.1f} %) is not above the baseline ({final['baseline']:.1f} %)")
    if "recurrence" in final and final["recurrence"] < 90:
        problems.append(f"recurrence reaches {final['recurrence']:.1f} % (< 90 %)")
    return problems


def plot(histories: dict, path: Path) -> bool:
    """Test accuracy per epoch of every variant; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for variant in VARIANTS:
        if variant.name in histories:
            rows = histories[variant.name]
            ax.plot([r["epoch"] for r in rows], [100 * r["test_acc"] for r in rows], label=variant.label)
    ax.axhline(50, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy, steps 191-199 (%)")
    ax.set_title("Delayed spiking XOR: the components of Table 6")
    ax.set_ylim(40, 101)
    ax.legend(fontsize=8, loc="lower right")
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
        history = train_variant(variant, epochs=epochs, lr_step=lr_step, out_dir=out / variant.name,
                                seed=seed, batches=batches, progress=progress)
        histories[variant.name] = history
        rows.append(summarize(variant, history))
        if progress:
            print(f"    final {rows[-1]['final']:.1f} %  best {rows[-1]['best']:.1f} %  "
                  f"({time.perf_counter() - started:.0f} s this call)", flush=True)
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "results.md").write_text(table(rows) + "\n")
    plot(histories, out / "accuracy.png")
    return rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snnfast study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=("xor",), help="the study to run")
    p.add_argument("--quick", action="store_true",
                   help=f"{QUICK['epochs']} epochs, StepLR({QUICK['lr_step']}, 0.1) (about 8 minutes on 2 cores) "
                        f"instead of Table 5's {FULL['epochs']}, StepLR({FULL['lr_step']}, 0.1)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--variants", nargs="+", choices=[v.name for v in VARIANTS], default=None,
                   help="run only these (default: all five)")
    p.add_argument("--out", type=Path, default=None, help="results folder (default runs/study-xor[-quick])")
    p.add_argument("--fresh", action="store_true", help="discard earlier runs in --out and start over")
    p.add_argument("--batches", type=int, default=None,
                   help="batches per epoch (default Table 5's 100; fewer for a smoke test)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv=None) -> list[dict]:
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
    variants = [v for v in VARIANTS if args.variants is None or v.name in args.variants]
    rows = run(variants, out=out, seed=args.seed, batches=args.batches, progress=not args.no_progress,
               **schedule)
    print(f"\nDelayed spiking XOR, {schedule['epochs']} epochs, StepLR({schedule['lr_step']}, 0.1), "
          f"seed {args.seed}: test accuracy over steps 191-199\n")
    print(table(rows))
    problems = check_ordering(rows)
    print("\nTable 6's ordering: " + ("kept" if not problems else "NOT kept: " + "; ".join(problems)))
    print(f"Results in {out}/ (results.md, results.csv, accuracy.png, one folder per variant)")
    return rows


if __name__ == "__main__":
    main()
