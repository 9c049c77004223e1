"""``snnfast study losses``: SDT against TET, TET-S and LTS on static images (the IMP paper,
Shen et al.: Observation 3 and Figure 4, the test accuracy at each time step; Observation 4 and
Figures 5 and 7, the convergence; Table 1, SDT against TET; Table 3, LTS).

A small spiking conv net (``study_digits.StudyConvNet``) of IF neurons with soft reset
(the paper's neuron, eqs. 1-3) and the ATan surrogate (the authors' SEW-ResNet configs) learns
scikit-learn's 8 x 8 digits (--quick, or --data digits) or CIFAR10 / CIFAR100 from --data-dir,
with direct encoding (the image is the input current at every step), for T = 1, 2, 4 and 6
(Figure 7's panels) and each loss. A run is classified by its time-averaged output, except
LTS runs, by the last step's (the paper: LTS "retains the output of the last time step as the
result of the entire model"). Every run keeps its checkpoint under --out, so running the same
command again continues where it stopped (--fresh starts over).

Results: results.md, results.csv (one row per run: final accuracies, accuracy at each step,
convergence), convergence.png (test accuracy per epoch, one panel per T: Figures 5 and 7)
and per_step.png (test accuracy from each step's output alone: Figure 4).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import losses
from .. import surrogate as surrogates
from ..nn import IF
from . import study_digits
from .study_digits import StudyConvNet

LOSSES = {
    "sdt": ("SDT", lambda: losses.SDT()),
    "tet": ("TET", lambda: losses.TET()),
    # The authors' configs smooth the labels with 0.01 (the paper's example uses 0.1).
    "tets": ("TET-S", lambda: losses.TETS(epsilon=0.01)),
    "lts": ("LTS", lambda: losses.LTS()),
}
STEPS = (1, 2, 4, 6)  # Figure 7's T = 1, 2, 4, 6
QUICK = dict(epochs=8, lr=5e-3, batch_size=64)
FULL = dict(epochs=60, lr=1e-3, batch_size=128)

# The paper's numbers for the same comparison (SEW-ResNet-18, T = 4): Table 1 (SDT / TET) and
# Table 3 (LTS, ImageNet-1k, against the SEW-ResNet-18 baseline's 63.18 %).
PAPER = {
    "sdt": "CIFAR10 94.56, CIFAR100 76.58, ImageNet-1k 63.21",
    "tet": "CIFAR10 94.33, CIFAR100 76.40, ImageNet-1k 62.92",
    "tets": "neuromorphic only (CIFAR10-DVS +1.2 over IMP)",
    "lts": "ImageNet-1k 64.33 (+1.15)",
}


def make_model(in_channels: int, classes: int, widths):
    def build():
        return StudyConvNet(in_channels, classes, widths,
                            lambda: IF(reset="soft", threshold=1.0, surrogate=surrogates.ATan()))
    return build


def run(*, data: str, data_dir: Path | None, steps, loss_names, epochs: int, lr: float, batch_size: int,
        out: Path, seed: int = 0, samples: int | None = None, progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set, channels, classes, widths = study_digits.load(data, data_dir, samples)
    rows, curves = [], {}
    runs = [(T, name) for T in steps for name in loss_names]
    for i, (T, name) in enumerate(runs):
        label, make_loss = LOSSES[name]
        if progress:
            print(f"[{i + 1}/{len(runs)}] {label}, T = {T}", flush=True)
        result = study_digits.train_run(
            make_model(channels, classes, widths), make_loss(), train_set, test_set, T=T, epochs=epochs,
            lr=lr, batch_size=batch_size, out_dir=out / f"T{T}_{name}", seed=seed, last_step=name == "lts",
            progress=progress)
        accuracy = [100 * r["test_acc"] for r in result.history]
        curves[(T, name)] = accuracy
        row = {"T": T, "loss": name, "label": label, "reported": accuracy[-1], "mean_output": result.mean_acc,
               "last_step": result.last_acc, "best": max(accuracy), "epoch_1": accuracy[0],
               "mean_over_epochs": sum(accuracy) / len(accuracy), "epochs": len(accuracy),
               "minutes": sum(r["seconds"] for r in result.history) / 60}
        row.update({f"step_{t + 1}": value for t, value in enumerate(result.per_step)})
        rows.append(row)
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(table(rows) + "\n\n" + step_table(rows) + "\n")
    plot(rows, curves, out)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| T | loss | test acc. (reported) | from mean output | from last step | best epoch | epoch 1 | "
             "mean over epochs | minutes | paper (SEW-ResNet-18, T = 4) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['T']} | {r['label']} | {r['reported']:.1f} % | {r['mean_output']:.1f} % | "
                     f"{r['last_step']:.1f} % | {r['best']:.1f} % | {r['epoch_1']:.1f} % | "
                     f"{r['mean_over_epochs']:.1f} % | {r['minutes']:.1f} | {PAPER[r['loss']]} |")
    return "\n".join(lines)


def step_table(rows: list[dict]) -> str:
    """Test accuracy (%) from each step's output alone (Observation 3, Figure 4)."""
    width = max(r["T"] for r in rows)
    lines = ["Test accuracy (%) from the output of each step alone:", "",
             "| T | loss | " + " | ".join(f"step {t}" for t in range(1, width + 1)) + " |",
             "|---:|---|" + "---:|" * width]
    for r in rows:
        cells = [f"{r[f'step_{t}']:.1f}" if f"step_{t}" in r and t <= r["T"] else "" for t in range(1, width + 1)]
        lines.append(f"| {r['T']} | {r['label']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(rows: list[dict], curves: dict, out: Path) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    steps = sorted({r["T"] for r in rows})
    names = list(dict.fromkeys(r["loss"] for r in rows))
    fig, axes = plt.subplots(1, len(steps), figsize=(4 * len(steps), 3.6), squeeze=False, sharey=True)
    for ax, T in zip(axes[0], steps):
        for name in names:
            if (T, name) in curves:
                accuracy = curves[(T, name)]
                ax.plot(range(1, len(accuracy) + 1), accuracy, label=LOSSES[name][0])
        ax.set_title(f"T = {T}")
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Convergence of SDT, TET, TET-S and LTS (IMP paper, Figures 5 and 7)")
    fig.tight_layout()
    fig.savefig(out / "convergence.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(steps), figsize=(4 * len(steps), 3.6), squeeze=False, sharey=True)
    for ax, T in zip(axes[0], steps):
        for r in rows:
            if r["T"] == T:
                ax.plot(range(1, T + 1), [r[f"step_{t}"] for t in range(1, T + 1)], marker="o", label=r["label"])
        ax.set_title(f"T = {T}")
        ax.set_xlabel("step whose output classifies")
        ax.set_xticks(range(1, T + 1))
    axes[0][0].set_ylabel("test accuracy (%)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("Accuracy at each time step (IMP paper, Observation 3 and Figure 4)")
    fig.tight_layout()
    fig.savefig(out / "per_step.png", dpi=120)
    plt.close(fig)
    return True


def parser() -> argparse.ArgumentParser:
    p = study_digits.parser("losses", __doc__, QUICK, FULL, STEPS)
    p.add_argument("--losses", nargs="+", choices=list(LOSSES), default=list(LOSSES))
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv=None) -> list[dict]:
    args = parser().parse_args(argv)
    data, schedule, out = study_digits.resolve(args, QUICK, FULL, "losses")
    rows = run(data=data, data_dir=args.data_dir, steps=args.T, loss_names=args.losses, out=out, seed=args.seed,
               samples=args.samples, progress=not args.no_progress, **schedule)
    print(f"\nSDT, TET, TET-S and LTS on {data}, {schedule['epochs']} epochs, Adam lr {schedule['lr']}, seed "
          f"{args.seed}; reported accuracy: time-averaged output (LTS: last step), last epoch\n")
    print(table(rows))
    print()
    print(step_table(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, convergence.png, per_step.png, one folder per run)")
    return rows
