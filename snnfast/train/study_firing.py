"""``snnfast study firing``: how the reset changes the firing rates (the functional-roles
paper, Yin et al., Section 4.1.3 and Figure 3: "the reset can reduce the firing rate by
returning the membrane potential to a lower value every time a spike fires").

Each leakage / recurrence setting of the SNN trains twice, with the normal (hard) reset and
without reset, on N-MNIST (from --data-dir) or the simulated N-Digits (--data ndigits, the
default), SHD or SSC. On the test set every spiking neuron's average firing rate (spikes per time
step) is measured; the distribution over the hidden neurons is Figure 3's. Networks are shared
with the other functional-roles studies under --models (``generalization`` trains the baseline,
no-reset and recurrent ones with the same settings), and resume there.

Results in --out: results.md, results.csv (per network: mean, median and quantiles of the
hidden rates, the silent fraction, the output layer's mean rate, the test accuracy),
rates.csv (the histogram) and firing.png (the distributions, reset against no reset).
"""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from . import study_digits, study_events
from .study_events import Network, SNN_VARIANTS

_NAMED = {n.name: n for n in SNN_VARIANTS}
# (with the normal reset, without reset): the same leak and recurrence.
PAIRS = (
    (_NAMED["baseline"], _NAMED["no_reset"]),
    (_NAMED["no_leak"], Network("no_leak_no_reset", "SNN: without leakage and reset", {"beta": 1.0, "reset": "none"})),
    (_NAMED["complete_leak"], Network("complete_leak_no_reset", "SNN: complete leakage, without reset",
                                      {"beta": 0.0, "reset": "none"})),
    (_NAMED["recurrence"], Network("recurrence_no_reset", "SNN: with recurrence, without reset",
                                   {"reset": "none", "recurrent": True})),
    (_NAMED["no_leak_recurrence"], _NAMED["no_leak_no_reset_recurrence"]),
)
NETWORKS = tuple(n for pair in PAIRS for n in pair)
BINS = 20  # equal bins of the rate over [0, 1]


def histogram(rates: torch.Tensor, bins: int = BINS) -> list[int]:
    """How many neurons fall in each of ``bins`` equal bins of [0, 1] (1.0 in the last)."""
    index = (rates.double().clamp(0, 1) * bins).long().clamp(max=bins - 1)
    return torch.bincount(index, minlength=bins).tolist()


def summarize(network: Network, rates: list[torch.Tensor], accuracy: float, history: list[dict]) -> dict:
    """The hidden layers' rate distribution (all hidden neurons together) and the output's."""
    hidden = torch.cat(rates[:-1]) if len(rates) > 1 else rates[0]
    q = torch.quantile(hidden, torch.tensor([0.1, 0.5, 0.9], dtype=hidden.dtype)).tolist()
    return {
        "network": network.name, "label": network.label, "reset": network.changes.get("reset", "hard"),
        "hidden_mean": float(hidden.mean()), "hidden_p10": q[0], "hidden_median": q[1], "hidden_p90": q[2],
        "silent": float((hidden == 0).double().mean()), "output_mean": float(rates[-1].mean()),
        "accuracy": accuracy, "epochs": len(history), "minutes": sum(r["seconds"] for r in history) / 60,
    }


def check(rows: list[dict]) -> list[str]:
    """Figure 3's claim, pair by pair: the mean hidden rate is lower with the reset."""
    by_name = {r["network"]: r for r in rows}
    lines = []
    for with_reset, without in PAIRS:
        if with_reset.name in by_name and without.name in by_name:
            a, b = by_name[with_reset.name]["hidden_mean"], by_name[without.name]["hidden_mean"]
            verdict = "holds" if a < b else "does NOT hold"
            lines.append(f"{with_reset.name}: {a:.4f} with reset, {b:.4f} without: {verdict}")
    return lines


def table(rows: list[dict]) -> str:
    lines = ["| network | reset | hidden rate: mean | p10 | median | p90 | silent | output rate | accuracy | paper (Figure 3) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        paper = "higher rates" if r["reset"] == "none" else "lower rates (sparser)"
        lines.append(f"| {r['label']} | {r['reset']} | {r['hidden_mean']:.4f} | {r['hidden_p10']:.4f} | "
                     f"{r['hidden_median']:.4f} | {r['hidden_p90']:.4f} | {100 * r['silent']:.1f} % | "
                     f"{r['output_mean']:.4f} | {r['accuracy']:.1f} % | {paper} |")
    return "\n".join(lines)


def plot(histograms: dict, path: Path, bins: int = BINS) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    pairs = [p for p in PAIRS if p[0].name in histograms and p[1].name in histograms]
    if not pairs:
        return False
    fig, axes = plt.subplots(1, len(pairs), figsize=(3.3 * len(pairs), 3.4), squeeze=False)
    edges = [i / bins for i in range(bins + 1)]
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    for ax, (with_reset, without) in zip(axes[0], pairs):
        for network, colour, label in ((with_reset, "tab:blue", "normal reset"), (without, "tab:red", "without reset")):
            counts = histograms[network.name]
            share = [100 * c / max(sum(counts), 1) for c in counts]
            ax.bar(centres, share, width=1 / bins, alpha=0.55, color=colour, label=label)
        ax.set_title(with_reset.label.replace("SNN (baseline): ", "").replace("SNN: ", ""), fontsize=8)
        ax.set_xlabel("firing rate (spikes / step)")
    axes[0][0].set_ylabel("hidden neurons (%)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Average firing rate of each hidden neuron on the test set (Figure 3)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run(networks=NETWORKS, *, data: str = "ndigits", data_dir: Path | None = None, quick: bool = False,
        epochs: int | None = None, out: Path, models: Path, seed: int = 0, samples: int | None = None,
        progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    setup = study_events.setup_for(data, quick, epochs)
    test_set = study_events.load_split(setup, data_dir, "test", samples)

    def measure(network, result):
        rates = study_events.spike_rates(result.model, test_set)
        hidden = torch.cat(rates[:-1]) if len(rates) > 1 else rates[0]
        return summarize(network, rates, result.mean_acc, result.history), histogram(hidden)

    measured = study_events.train_each(
        setup, networks, measure, lambda m: f"hidden rate {m[0]['hidden_mean']:.4f}, accuracy {m[0]['accuracy']:.1f} %",
        data_dir=data_dir, models=models, seed=seed, samples=samples, progress=progress)
    rows = [row for row, _ in measured]
    histograms = {network.name: counts for network, (_, counts) in zip(networks, measured)}
    study_digits.write_csv(rows, out / "results.csv")
    with open(out / "rates.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["network", *[f"bin_{i / BINS:.2f}-{(i + 1) / BINS:.2f}" for i in range(BINS)]])
        writer.writerows([name, *counts] for name, counts in histograms.items())
    (out / "results.md").write_text(
        f"Average firing rate (spikes per neuron per step) on the test set ({data}, {setup.epochs} epochs).\n\n"
        + table(rows) + "\n\n" + "\n".join(f"- {line}" for line in check(rows)) + "\n")
    plot(histograms, out / "firing.png")
    return rows


def main(argv=None):
    p = study_events.parser("firing", __doc__, "Table 5's 100 epochs of Table 4's networks")
    p.add_argument("--networks", nargs="+", choices=[n.name for n in NETWORKS], default=None,
                   help="train and measure only these (default: all ten, five pairs)")
    args = p.parse_args(argv)
    networks = [n for n in NETWORKS if args.networks is None or n.name in args.networks]
    out, models = study_events.resolve(args, "firing", networks)
    rows = study_events.run_from_args("firing", run, networks, args, out, models)
    print(f"\nFiring rates on {args.data}, normal reset against without reset (Figure 3: the reset lowers them)\n")
    print(table(rows))
    print("\nFigure 3's claim, per pair: " + ("; ".join(check(rows)) or "not checked (run both of a pair)"))
    print(f"Results in {out}/ (results.md, results.csv, rates.csv, firing.png); networks in {models}/")
    return rows


if __name__ == "__main__":
    main()
