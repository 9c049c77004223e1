"""``snnfast study generalization``: train at one temporal resolution, test at others (the
functional-roles paper, Yin et al., Section 4.2 and Table 8).

The seven SNN variants of Table 8 and three RNN baselines of the same size
(Input-RNN(hidden)-FC(10): LSTM, GRU, vanilla RNN) train on 3 ms frames of N-MNIST (from
--data-dir) or of the simulated N-Digits (--data ndigits, the default), then are tested, unchanged,
on frames of 1, 2, 3, 5 and 10 ms. Every network keeps its checkpoint under --models, so
running the command again continues where it stopped; the evaluations are redone (seconds).

Results in --out: results.md, results.csv (accuracy at each window, and the paper's) and
generalization.png (accuracy against the window, ours beside Table 8's).
"""
from __future__ import annotations

from pathlib import Path

from . import study_digits, study_events
from .study_events import RNN_BASELINES, SNN_VARIANTS

TRAIN_WINDOW_MS = 3.0
WINDOWS_MS = (1.0, 2.0, 3.0, 5.0, 10.0)
NETWORKS = SNN_VARIANTS + RNN_BASELINES
# Table 8: N-MNIST test accuracy (%) at 1, 2, 3, 5, 10 ms after training at 3 ms.
PAPER = {
    "baseline": (90.82, 94.14, 94.76, 94.80, 94.63),
    "no_leak": (88.70, 94.49, 95.18, 95.26, 95.07),
    "complete_leak": (90.98, 94.57, 95.03, 95.12, 95.14),
    "no_reset": (93.90, 95.83, 96.18, 96.30, 96.12),
    "recurrence": (75.51, 93.72, 96.21, 94.00, 80.41),
    "no_leak_recurrence": (59.14, 93.48, 96.48, 92.57, 70.11),
    "no_leak_no_reset_recurrence": (36.92, 89.16, 93.40, 90.91, 74.01),
    "lstm": (31.62, 90.52, 97.84, 63.10, 9.84),
    "gru": (23.25, 77.69, 96.88, 81.83, 45.20),
    "vanilla_rnn": (17.68, 18.28, 93.84, 37.58, 19.92),
}


def _key(window: float) -> str:
    return f"{window:g}ms"


def evaluate_windows(model, setup, data_dir, windows=WINDOWS_MS, samples=None) -> dict:
    """Test accuracy (%) of ``model`` at each time window (``{window: accuracy}``)."""
    return {w: study_events.accuracy(model, study_events.load_split(setup, data_dir, "test", samples, w))
            for w in windows}


def retained(accuracies: dict) -> float:
    """The mean accuracy at the windows it was not trained on, as a % of the accuracy at the
    training window: 100 means no loss from the change of resolution."""
    others = [a for w, a in accuracies.items() if w != TRAIN_WINDOW_MS]
    return 100.0 * (sum(others) / len(others)) / max(accuracies[TRAIN_WINDOW_MS], 1e-9)


def summarize(network, accuracies: dict, history: list[dict]) -> dict:
    row = {"network": network.name, "label": network.label}
    row.update({_key(w): a for w, a in accuracies.items()})
    row["retained"] = retained(accuracies)
    paper = dict(zip(WINDOWS_MS, PAPER[network.name]))
    row.update({f"paper_{_key(w)}": paper[w] for w in accuracies if w in paper})
    if all(w in paper for w in accuracies):
        row["paper_retained"] = retained({w: paper[w] for w in accuracies})
    row["epochs"] = len(history)
    row["minutes"] = sum(r["seconds"] for r in history) / 60
    return row


def table(rows: list[dict], windows=WINDOWS_MS) -> str:
    head = " | ".join(f"{_key(w)}" for w in windows)
    lines = [f"| network | {head} | retained | paper: {head} | paper retained |",
             "|---|" + "---:|" * (2 * len(windows) + 2)]
    for r in rows:
        ours = " | ".join(f"{r[_key(w)]:.1f}" for w in windows)
        paper = " | ".join(f"{r[f'paper_{_key(w)}']:.1f}" for w in windows)
        lines.append(f"| {r['label']} | {ours} | {r['retained']:.1f} | {paper} | {r.get('paper_retained', float('nan')):.1f} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, windows=WINDOWS_MS) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2), sharey=True)
    for source, ax, title in (("", axes[0], "measured here"), ("paper_", axes[1], "the paper (Table 8, N-MNIST)")):
        for r in rows:
            style = "--" if r["network"] in {n.name for n in RNN_BASELINES} else "-"
            ax.plot(windows, [r[f"{source}{_key(w)}"] for w in windows], style, marker="o", ms=3,
                    label=r["label"].replace("SNN: ", "").replace("SNN (baseline): ", "baseline: "))
        ax.axvline(TRAIN_WINDOW_MS, color="grey", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xticks(windows)
        ax.set_xticklabels([f"{w:g}" for w in windows])
        ax.set_xlabel("time window of the test frames (ms); trained at 3 ms")
        ax.set_title(title)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def run(networks=NETWORKS, *, data: str = "ndigits", data_dir: Path | None = None, quick: bool = False,
        epochs: int | None = None, out: Path, models: Path, seed: int = 0, samples: int | None = None,
        windows=WINDOWS_MS, progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    setup = study_events.setup_for(data, quick, epochs)
    rows = study_events.train_each(
        setup, networks,
        lambda network, result: summarize(network, evaluate_windows(result.model, setup, data_dir, windows, samples),
                                          result.history),
        lambda row: "  ".join(f"{_key(w)} {row[_key(w)]:.1f} %" for w in windows),
        data_dir=data_dir, models=models, seed=seed, samples=samples, progress=progress)
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(
        f"Test accuracy (%) at each time window after training at {TRAIN_WINDOW_MS:g} ms ({data}, "
        f"{setup.epochs} epochs); 'retained' is the mean at the other windows as a % of the 3 ms one.\n\n"
        + table(rows, windows) + "\n")
    plot(rows, out / "generalization.png", windows)
    return rows


def main(argv=None):
    p = study_events.parser("generalization", __doc__, "Table 5's 100 epochs of Table 4's 512 neurons",
                            data=("ndigits", "nmnist"))
    p.add_argument("--networks", nargs="+", choices=[n.name for n in NETWORKS], default=None,
                   help="train and test only these (default: all ten)")
    args = p.parse_args(argv)
    networks = [n for n in NETWORKS if args.networks is None or n.name in args.networks]
    out, models = study_events.resolve(args, "generalization", networks)
    rows = study_events.run_from_args("generalization", run, networks, args, out, models)
    print(f"\nTrained at {TRAIN_WINDOW_MS:g} ms on {args.data}, tested at each window: ours, then Table 8's "
          "(N-MNIST)\n")
    print(table(rows))
    print(f"\nResults in {out}/ (results.md, results.csv, generalization.png); networks in {models}/")
    return rows


if __name__ == "__main__":
    main()
