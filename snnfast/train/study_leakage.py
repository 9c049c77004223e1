"""``snnfast study leakage``: the leak beta from 0 to 1 in steps of 0.1 (the functional-roles
paper, Yin et al., Table 7 and Figure 7; beta = 1 is "without leakage", beta = 0 "complete
leakage").

One network per beta, the rest of the setup as Tables 4 and 5 give it: the delayed spiking XOR
(--data xor, the network and task of ``snnfast study xor``), N-MNIST, SHD or SSC from
--data-dir, or the simulated N-Digits (--data ndigits, the default). Every network keeps its
checkpoint (XOR: under --out; the event data: under --models, shared with the other
functional-roles studies, so beta = 0, 0.3 and 1 reuse the complete-leakage, baseline and
no-leakage networks of ``generalization``), and a second run continues where one stopped.

Results in --out: results.md, results.csv and leakage.png (accuracy against beta, ours and the
paper's).
"""
from __future__ import annotations

from pathlib import Path

from . import study, study_digits, study_events
from .study_events import BASELINE, SNN_VARIANTS, Network

BETAS = tuple(round(0.1 * i, 1) for i in range(11))
# Table 7: test accuracy (%) per beta (0.0, 0.1, ..., 1.0) and data set.
PAPER = {
    "shd": (67.67, 69.04, 67.89, 68.29, 69.17, 72.35, 67.76, 67.89, 63.91, 58.61, 13.69),
    "ssc": (44.45, 45.30, 46.53, 47.98, 49.88, 51.69, 52.62, 54.50, 56.52, 58.16, 3.22),
    "nmnist": (95.03, 95.04, 94.84, 94.75, 94.69, 94.60, 94.69, 94.84, 95.19, 95.34, 95.18),
    "dvs_gesture": (93.75, 93.05, 93.75, 94.09, 94.44, 93.75, 93.40, 92.01, 90.62, 89.93, 89.23),
    "mnist": (95.22, 95.12, 94.77, 94.85, 95.98, 95.62, 96.02, 95.17, 94.85, 96.48, 94.38),
    "cifar10": (92.25, 92.67, 92.28, 93.09, 93.98, 93.23, 93.64, 93.21, 93.22, 92.76, 92.97),
    # Table 7 has no XOR column; Table 6 gives its two ends (complete leakage, no leakage).
    "xor": (50.30, None, None, None, None, None, None, None, None, None, 50.50),
}
# Which of the paper's columns a data set is compared with (N-Digits stands in for N-MNIST).
PAPER_COLUMN = {"ndigits": "nmnist", "nmnist": "nmnist", "shd": "shd", "ssc": "ssc", "xor": "xor"}
# XOR --quick: 10 epochs of 20 batches (of 500), one decay after 8 (about a minute a beta).
XOR_QUICK = dict(epochs=10, lr_step=8, batches=20)
XOR_FULL = dict(epochs=study.FULL["epochs"], lr_step=study.FULL["lr_step"], batches=None)


def network_for(beta: float, setup_beta) -> Network:
    """The network of one beta; the ends and the setup's own beta are the variants the other
    studies train (the same settings, so the same run)."""
    named = {n.name: n for n in SNN_VARIANTS}
    if beta == 0.0:
        return named["complete_leak"]
    if beta == 1.0:
        return named["no_leak"]
    if setup_beta != "learnable" and beta == float(setup_beta):
        return BASELINE
    return Network(f"beta_{beta:.1f}", f"SNN: beta = {beta:.1f}", {"beta": beta})


def paper_source(data: str) -> str:
    return "Table 6's two ends (Table 7 has no XOR)" if data == "xor" else f"Table 7's {PAPER_COLUMN[data]} column"


def paper_accuracy(data: str, beta: float):
    return PAPER[PAPER_COLUMN[data]][BETAS.index(beta)]


def train_xor(beta: float, *, quick: bool, epochs: int | None, out: Path, seed: int, progress: bool):
    """One XOR network at ``beta`` (``snnfast study xor``'s training): (accuracy %, epochs, minutes)."""
    schedule = dict(XOR_QUICK if quick else XOR_FULL)
    if epochs is not None:
        schedule["epochs"] = epochs
    variant = study.Variant(f"beta_{beta:.1f}", f"beta = {beta:.1f}", {"beta": beta}, paper_accuracy("xor", beta))
    history, kept, _ = study.train_variant(variant, epochs=schedule["epochs"], lr_step=schedule["lr_step"],
                                           out_dir=out / "xor-models" / variant.name, seed=seed,
                                           batches=schedule["batches"], progress=progress)
    return 100 * history[kept - 1]["test_acc"], len(history), sum(r["seconds"] for r in history) / 60


def run(betas=BETAS, *, data: str = "ndigits", data_dir: Path | None = None, quick: bool = False,
        epochs: int | None = None, out: Path, models: Path, seed: int = 0, samples: int | None = None,
        progress: bool = True) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    setup = None if data == "xor" else study_events.setup_for(data, quick, epochs)

    def trained(beta) -> dict:
        """The row of the network of ``beta``, trained (or resumed)."""
        if setup is None:
            accuracy, n_epochs, minutes = train_xor(beta, quick=quick, epochs=epochs, out=out, seed=seed,
                                                    progress=progress)
            name = f"beta_{beta:.1f}"
        else:
            network = network_for(beta, setup.beta)
            result = study_events.train(setup, network, data_dir=data_dir, models=models, seed=seed,
                                        samples=samples, progress=progress)
            accuracy, n_epochs = result.mean_acc, len(result.history)
            minutes, name = sum(r["seconds"] for r in result.history) / 60, network.name
        return {"beta": beta, "network": name, "accuracy": accuracy, "paper": paper_accuracy(data, beta),
                "epochs": n_epochs, "minutes": minutes}

    rows = study_events.train_and_measure(betas, trained, lambda beta, row: row, lambda row: f"{row['accuracy']:.1f} %",
                                          label=lambda beta: f"beta = {beta:.1f}", progress=progress)
    study_digits.write_csv(rows, out / "results.csv")
    (out / "results.md").write_text(f"Test accuracy (%) per beta on {data} ({rows[0]['epochs']} epochs), "
                                    f"beside {paper_source(data)}.\n\n" + table(rows, data) + "\n")
    plot(rows, data, out / "leakage.png")
    return rows


def table(rows: list[dict], data: str) -> str:
    column = PAPER_COLUMN[data]
    lines = [f"| beta | snnfast ({data}) | paper ({column}) |", "|---:|---:|---:|"]
    for r in rows:
        paper = "-" if r["paper"] is None else f"{r['paper']:.2f} %"
        lines.append(f"| {r['beta']:.1f} | {r['accuracy']:.1f} % | {paper} |")
    return "\n".join(lines)


def plot(rows: list[dict], data: str, path: Path) -> bool:
    plt = study_digits.matplotlib_pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot([r["beta"] for r in rows], [r["accuracy"] for r in rows], marker="o", label=f"snnfast, {data}")
    column = PAPER_COLUMN[data]
    known = [(b, a) for b, a in zip(BETAS, PAPER[column]) if a is not None]
    ax.plot(*zip(*known), ls="--", marker="s", ms=4, color="grey", label=f"paper, {column} (Table 7)")
    ax.set_xlabel("beta (0: complete leakage, 1: without leakage)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("The leak (Table 7, Figure 7)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def main(argv=None):
    p = study_events.parser("leakage", __doc__, "Tables 4 and 5 (XOR: 150 epochs; the others: 100)",
                            data=("xor", *study_events.DATA))
    p.add_argument("--betas", nargs="+", type=float, default=None,
                   help="train only these of 0, 0.1, ..., 1 (default: all eleven)")
    args = p.parse_args(argv)
    betas = BETAS if args.betas is None else tuple(round(b, 1) for b in args.betas)
    unknown = [b for b in betas if b not in BETAS]
    if unknown:
        raise SystemExit(f"--betas must be among 0, 0.1, ..., 1; got {unknown}")
    if args.data == "xor" and args.samples is not None:
        raise SystemExit("--samples does not apply to --data xor (its samples are generated each epoch)")
    base = None if args.data == "xor" else study_events.setup_for(args.data, args.quick)
    networks = [] if base is None else [network_for(b, base.beta) for b in betas]
    out, models = study_events.resolve(args, "leakage", networks)
    rows = study_events.run_from_args("leakage", run, betas, args, out, models)
    print(f"\nThe leak on {args.data}: ours beside {paper_source(args.data)}\n")
    print(table(rows, args.data))
    print(f"\nResults in {out}/ (results.md, results.csv, leakage.png)")
    return rows


if __name__ == "__main__":
    main()
