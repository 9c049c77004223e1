"""``snnfast study dalif-ablation``: the DA-LIF paper's ablation (Zhang et al., section IV-D1
and Figure 2): the LIF baseline against alpha learnable only, beta learnable only, and both
(DA-LIF); and the learned alpha and beta per layer (its Figure 3).

The four variants are one neuron, snnfast's DALIF (h_t = beta u_{t-1} + alpha x_t with
alpha = tanh(alpha_raw), beta = tanh(beta_raw), one pair per layer, both raw parameters
starting at 1 as the paper says), with the decays that are not learned frozen at that start:
the baseline is a LIF neuron with alpha = beta = tanh(1) ~ 0.762, so the variants differ only
in what is learned (the paper does not say which decays its baseline LIF uses: our choice).
Threshold 1, hard reset, rectangle surrogate of width 1 (the paper's eq. 11); SDT loss
(the paper does not name its loss: our choice).

Each variant trains with 3 seeds (--seeds) on a small spiking conv net
(``study_digits.StudyConvNet``, three neuron layers) with direct encoding, on scikit-learn's
8 x 8 digits (--quick) or on CIFAR10 / CIFAR100 from --data-dir, at T = 2 (the paper quotes
its +1.28 points at T = 2) and T = 1 (where the paper notes that beta has no effect: with
u0 = 0 it multiplies nothing). Every run keeps its checkpoint under --out, so the same command
continues where it stopped (--fresh starts over).

Results: results.md (mean and standard deviation over the seeds, the gain over the baseline
beside the paper's), results.csv (one row per run, with the learned decays), accuracy.png
(each variant's runs and mean) and decays.png (alpha and beta per layer, every seed).
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from pathlib import Path

from .. import losses
from .. import surrogate as surrogates
from ..nn import DALIF
from . import study_digits
from .study_digits import StudyConvNet


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    learn_alpha: bool
    learn_beta: bool
    paper: float | None  # the gain over the baseline on CIFAR-100 (ResNet-20), points


VARIANTS = (
    Variant("lif", "LIF (alpha, beta fixed)", False, False, None),
    Variant("alpha", "alpha learnable", True, False, 0.76),
    Variant("beta", "beta learnable", False, True, 0.37),
    Variant("both", "DA-LIF (both learnable)", True, True, 1.28),
)
STEPS = (1, 2)
SEEDS = (0, 1, 2)
QUICK = dict(epochs=8, lr=5e-3, batch_size=64)
FULL = dict(epochs=60, lr=1e-3, batch_size=128)


def make_model(variant: Variant, in_channels: int, classes: int, widths):
    def neuron():
        layer = DALIF(threshold=1.0, reset="hard", surrogate=surrogates.Rectangle(1.0))
        layer.alpha_raw.requires_grad_(variant.learn_alpha)
        layer.beta_raw.requires_grad_(variant.learn_beta)
        return layer

    def build():
        return StudyConvNet(in_channels, classes, widths, neuron)
    return build


def decays(model) -> list[tuple[float, float]]:
    """(alpha, beta) of every DALIF layer, input side first."""
    return [(m.alpha.item(), m.beta.item()) for m in model.modules() if isinstance(m, DALIF)]


def run(*, data: str, data_dir: Path | None, steps, seeds, variants, epochs: int, lr: float, batch_size: int,
        out: Path, samples: int | None = None, progress: bool = True) -> tuple[list[dict], list[dict]]:
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set, channels, classes, widths = study_digits.load(data, data_dir, samples)
    rows, curves = [], {}
    runs = [(T, v, s) for T in steps for v in variants for s in seeds]
    for i, (T, variant, seed) in enumerate(runs):
        if progress:
            print(f"[{i + 1}/{len(runs)}] {variant.label}, T = {T}, seed {seed}", flush=True)
        result = study_digits.train_run(
            make_model(variant, channels, classes, widths), losses.SDT(), train_set, test_set, T=T, epochs=epochs,
            lr=lr, batch_size=batch_size, out_dir=out / f"T{T}_{variant.name}_seed{seed}", seed=seed,
            progress=progress)
        accuracy = [100 * r["test_acc"] for r in result.history]
        curves[(T, variant.name, seed)] = accuracy
        row = {"T": T, "variant": variant.name, "label": variant.label, "seed": seed, "accuracy": accuracy[-1],
               "best": max(accuracy), "epochs": len(accuracy),
               "minutes": sum(r["seconds"] for r in result.history) / 60}
        for layer, (alpha, beta) in enumerate(decays(result.model), 1):
            row[f"alpha_{layer}"], row[f"beta_{layer}"] = alpha, beta
        rows.append(row)
    summary = summarize(rows, variants)
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(table(summary) + "\n\n" + decay_table(rows) + "\n")
    plot(rows, curves, variants, out)
    return rows, summary


def summarize(rows: list[dict], variants) -> list[dict]:
    """Mean and standard deviation over the seeds of each (T, variant), and the gain of the
    mean over the baseline's at the same T."""
    summary = []
    for T in sorted({r["T"] for r in rows}):
        base = None
        for variant in variants:
            accuracy = [r["accuracy"] for r in rows if r["T"] == T and r["variant"] == variant.name]
            if not accuracy:
                continue
            mean = statistics.fmean(accuracy)
            if variant.name == "lif":
                base = mean
            summary.append({"T": T, "variant": variant.name, "label": variant.label, "runs": len(accuracy),
                            "mean": mean, "std": statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0,
                            "min": min(accuracy), "max": max(accuracy),
                            "gain": None if base is None else mean - base, "paper": variant.paper})
    return summary


def table(summary: list[dict]) -> str:
    lines = ["| T | variant | runs | test accuracy, mean +- std | min - max | gain over LIF | "
             "paper's gain (CIFAR-100, ResNet-20) |", "|---:|---|---:|---:|---:|---:|---:|"]
    for r in summary:
        gain = "" if r["gain"] is None or r["variant"] == "lif" else f"{round(r['gain'], 2) + 0.0:+.2f}"
        paper = "" if r["paper"] is None else f"+{r['paper']:.2f}"
        lines.append(f"| {r['T']} | {r['label']} | {r['runs']} | {r['mean']:.2f} +- {r['std']:.2f} % | "
                     f"{r['min']:.1f} - {r['max']:.1f} | {gain} | {paper} |")
    return "\n".join(lines)


def decay_table(rows: list[dict]) -> str:
    """The learned alpha and beta per layer of the DA-LIF runs, mean over seeds (start 0.762)."""
    lines = ["Learned decays of DA-LIF (both learnable), mean over the seeds (all start at tanh(1) = 0.762):", "",
             "| T | layer | alpha | beta |", "|---:|---:|---:|---:|"]
    for T in sorted({r["T"] for r in rows}):
        both = [r for r in rows if r["T"] == T and r["variant"] == "both"]
        layer = 1
        while both and f"alpha_{layer}" in both[0]:
            alpha = statistics.fmean(r[f"alpha_{layer}"] for r in both)
            beta = statistics.fmean(r[f"beta_{layer}"] for r in both)
            lines.append(f"| {T} | {layer} | {alpha:.3f} | {beta:.3f} |")
            layer += 1
    return "\n".join(lines)


def plot(rows: list[dict], curves: dict, variants, out: Path) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    steps = sorted({r["T"] for r in rows})
    fig, axes = plt.subplots(1, len(steps), figsize=(5.5 * len(steps), 3.8), squeeze=False, sharey=True)
    for ax, T in zip(axes[0], steps):
        for variant in variants:
            runs = [c for (t, name, _), c in curves.items() if t == T and name == variant.name]
            if not runs:
                continue
            epochs = range(1, len(runs[0]) + 1)
            line, = ax.plot(epochs, [statistics.fmean(v) for v in zip(*runs)], label=variant.label)
            for c in runs:
                ax.plot(epochs, c, color=line.get_color(), alpha=0.25, lw=0.8)
        ax.set_title(f"T = {T}")
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("test accuracy (%), mean of the seeds (thin: each seed)")
    axes[0][-1].legend(fontsize=8, loc="lower right")
    fig.suptitle("DA-LIF ablation: which decays are learned")
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=120)
    plt.close(fig)

    both = [r for r in rows if r["variant"] == "both"]
    if both:
        fig, axes = plt.subplots(1, len(steps), figsize=(5 * len(steps), 3.6), squeeze=False, sharey=True)
        for ax, T in zip(axes[0], steps):
            for r in (r for r in both if r["T"] == T):
                layers = range(1, 1 + sum(1 for key in r if key.startswith("alpha_")))
                ax.plot(layers, [r[f"alpha_{n}"] for n in layers], "o-", color="tab:blue", alpha=0.7,
                        label="alpha (spatial)" if r["seed"] == both[0]["seed"] else None)
                ax.plot(layers, [r[f"beta_{n}"] for n in layers], "s--", color="tab:red", alpha=0.7,
                        label="beta (temporal)" if r["seed"] == both[0]["seed"] else None)
                ax.set_xticks(list(layers))
            ax.axhline(0.7616, color="grey", lw=0.8, ls=":", label="start, tanh(1)")
            ax.set_title(f"T = {T}")
            ax.set_xlabel("layer")
        axes[0][0].set_ylabel("learned decay (every seed)")
        axes[0][-1].legend(fontsize=8)
        fig.suptitle("DA-LIF: learned alpha and beta per layer (the paper's Figure 3)")
        fig.tight_layout()
        fig.savefig(out / "decays.png", dpi=120)
        plt.close(fig)
    return True


def parser() -> argparse.ArgumentParser:
    p = study_digits.parser("dalif-ablation", __doc__, QUICK, FULL, STEPS)
    p.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    p.add_argument("--variants", nargs="+", choices=[v.name for v in VARIANTS], default=None)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    data, schedule, out = study_digits.resolve(args, QUICK, FULL, "dalif-ablation")
    variants = [v for v in VARIANTS if args.variants is None or v.name in args.variants]
    rows, summary = run(data=data, data_dir=args.data_dir, steps=args.T, seeds=args.seeds, variants=variants,
                        out=out, samples=args.samples, progress=not args.no_progress, **schedule)
    print(f"\nDA-LIF ablation on {data}, {schedule['epochs']} epochs, Adam lr {schedule['lr']}, seeds "
          f"{' '.join(map(str, args.seeds))}: test accuracy of the last epoch\n")
    print(table(summary))
    print()
    print(decay_table(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, accuracy.png, decays.png, one folder per run)")
    return rows, summary
