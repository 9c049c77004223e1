"""``snnfast study imp-patterns``: the IMP paper's pattern mapping (Shen et al., Figure 3) and
its Observation 1, computed with snnfast's IF neuron.

Pattern mapping: an IF neuron (beta = 1, soft reset, threshold 1) receives one of the 2^T
binary input patterns, each spike carrying the same weight w, and emits one of the 2^T output
patterns. A square (output, input) is white when some weight in the sweep (and, for the
learnable IMP, some initial membrane u0) makes the neuron emit that output for that input.
The sweeps are the authors' (their etc/pattern mapping scripts in StephenTaylor1998/IMP-SNN):
w in linspace(0, 1, 17) for IMP = 0 and IMP = 0.25; w in linspace(0, 1, 9) and u0 in
linspace(-1, 1, 9) for the learnable IMP, i.e. the values a learned IMP can take. A denser
sweep (257 values each) is reported beside them. Patterns are numbered as the authors do: the
bits of the number, most significant first, are the steps 1..T.

Observation 1: under a constant input, changing the IMP gives firing patterns that changing
the input's intensity does not (the authors' etc/firing pattern script: input 1/12, IMPs
k/12 over 32 steps; here input 1/8 and IMPs k/8 over 16 steps, exact in binary floating
point, so no spike depends on rounding at the threshold).

Results: results.md, results.csv, mapping.png (the three grids), mapping_<panel>.csv (each
grid, rows = output pattern, columns = input pattern) and observation1.png. The study takes
seconds; running it again rewrites them (nothing to resume).
"""
from __future__ import annotations

import argparse
import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..nn import IF

T_MAPPING = 4  # the paper's Figure 3: 4 steps, 16 patterns


@dataclass(frozen=True)
class Panel:
    name: str
    label: str  # as Figure 3 names it
    imps: tuple  # initial membranes swept
    weights: tuple  # input weights swept


def _grid(start: float, stop: float, num: int) -> tuple:
    return tuple(np.linspace(start, stop, num).tolist())


PANELS = (
    Panel("imp0", "(a) IMP = 0.0", (0.0,), _grid(0, 1, 17)),
    Panel("imp025", "(b) IMP = 0.25", (0.25,), _grid(0, 1, 17)),
    Panel("learnable", "(c) Learnable IMP", _grid(-1, 1, 9), _grid(0, 1, 9)),
)
DENSE = 257  # points of the dense sweeps reported beside the authors' ones


def patterns(T: int) -> torch.Tensor:
    """All 2^T binary patterns as [2^T, T] (float64); row p holds the bits of p, most
    significant first (step 1)."""
    p = torch.arange(2 ** T)
    return ((p.unsqueeze(1) >> torch.arange(T - 1, -1, -1)) & 1).double()


def pattern_index(spikes: torch.Tensor) -> torch.Tensor:
    """[..., T] binary patterns -> their numbers (step 1 the most significant bit)."""
    T = spikes.shape[-1]
    return (spikes.long() << torch.arange(T - 1, -1, -1)).sum(-1)


def pattern_name(index: int, T: int = T_MAPPING) -> str:
    return format(index, f"0{T}b")


def if_neuron_outputs(inputs: torch.Tensor, u0: torch.Tensor, threshold: float = 1.0) -> torch.Tensor:
    """Runs snnfast's IF neuron (soft reset, the paper's s[t+1] = h[t] - o[t]) with initial
    membrane ``u0`` [N] on input currents ``inputs`` [N, T]; returns the spikes [N, T]."""
    N, T = inputs.shape
    neuron = IF(reset="soft", threshold=threshold, imp=True, imp_shape=(N,))
    with torch.no_grad():
        neuron.u0.copy_(u0)
        spikes = neuron(inputs.t().unsqueeze(1))  # [T, 1, N]
    return spikes[:, 0].t()


def mapping(imps, weights, T: int = T_MAPPING, threshold: float = 1.0) -> np.ndarray:
    """The pattern mapping: a boolean [2^T, 2^T] array, entry (output, input) True when some
    (u0, w) of the sweeps makes the neuron emit ``output`` for ``input`` spikes of weight w."""
    inputs = patterns(T)  # [P, T]
    u0, w = torch.meshgrid(torch.tensor(imps, dtype=torch.float64),
                           torch.tensor(weights, dtype=torch.float64), indexing="ij")
    u0, w = u0.reshape(-1), w.reshape(-1)  # [S]
    P, S = inputs.shape[0], u0.numel()
    currents = (inputs.unsqueeze(1) * w.view(1, S, 1)).reshape(P * S, T)
    outputs = pattern_index(if_neuron_outputs(currents, u0.repeat(P), threshold)).view(P, S)
    grid = np.zeros((2 ** T, 2 ** T), dtype=bool)
    for p in range(P):
        grid[outputs[p].unique().numpy(), p] = True
    return grid


def constant_input_patterns(imps, intensities, T: int, threshold: float = 1.0) -> set:
    """The distinct output patterns of the IF neuron under constant inputs ``intensities``
    with initial membranes ``imps`` (every pair)."""
    u0, x = torch.meshgrid(torch.tensor(imps, dtype=torch.float64),
                           torch.tensor(intensities, dtype=torch.float64), indexing="ij")
    u0, x = u0.reshape(-1), x.reshape(-1)
    spikes = if_neuron_outputs(x.unsqueeze(1).expand(-1, T).contiguous(), u0, threshold)
    return set(pattern_index(spikes).tolist())


# Observation 1's example: one constant input, the IMP shifted in steps of the input.
OBS_INPUT, OBS_STEPS = 1 / 8, 16
OBS_IMPS = tuple(k / 8 for k in range(8))


def observation1_trains() -> torch.Tensor:
    """Spikes [len(OBS_IMPS), OBS_STEPS] of IF neurons with IMPs k/8 under the input 1/8."""
    x = torch.full((len(OBS_IMPS), OBS_STEPS), OBS_INPUT, dtype=torch.float64)
    return if_neuron_outputs(x, torch.tensor(OBS_IMPS, dtype=torch.float64))


def summarize() -> tuple[list[dict], dict]:
    """The rows of results.csv (one per panel, authors' and dense sweeps) and the grids."""
    rows, grids = [], {}
    for panel in PANELS:
        grid = mapping(panel.imps, panel.weights)
        grids[panel.name] = grid
        dense_imps = panel.imps if len(panel.imps) == 1 else _grid(-1, 1, DENSE)
        dense = mapping(dense_imps, _grid(0, 1, DENSE))
        rows.append({
            "panel": panel.name, "label": panel.label,
            "imps": f"{len(panel.imps)} in [{min(panel.imps):g}, {max(panel.imps):g}]",
            "weights": f"{len(panel.weights)} in [0, 1]",
            "white_squares": int(grid.sum()), "outputs_per_input": grid.sum() / grid.shape[1],
            "outputs_reached": int(grid.any(1).sum()),
            "white_squares_dense": int(dense.sum()), "outputs_per_input_dense": dense.sum() / dense.shape[1],
            "outputs_reached_dense": int(dense.any(1).sum()),
        })
    return rows, grids


def observation1_rows() -> list[dict]:
    """Distinct firing patterns under constant inputs in [0, 1], with the IMP fixed at 0 and
    with the IMP free in [-1, 1], for T = 4 and 8; and for the single input 1/8 alone."""
    intensities = _grid(0, 1, DENSE)
    rows = []
    for T in (4, 8):
        rows.append({"T": T, "inputs": f"{DENSE} constant inputs in [0, 1]",
                     "imp_0": len(constant_input_patterns((0.0,), intensities, T)),
                     "imp_free": len(constant_input_patterns(_grid(-1, 1, DENSE), intensities, T)),
                     "possible": 2 ** T})
    rows.append({"T": OBS_STEPS, "inputs": f"the one input {OBS_INPUT:g}",
                 "imp_0": len(constant_input_patterns((0.0,), (OBS_INPUT,), OBS_STEPS)),
                 "imp_free": len(constant_input_patterns(OBS_IMPS, (OBS_INPUT,), OBS_STEPS)),
                 "possible": 2 ** OBS_STEPS})
    return rows


def tables(rows: list[dict], obs_rows: list[dict], trains: torch.Tensor) -> str:
    lines = ["Pattern mapping of an IF neuron over 4 steps (Figure 3): white squares of the 16 x 16 grid",
             "", "| panel | IMPs swept | weights swept | white squares | outputs per input | output patterns "
             "reached | dense sweep (257 x 257): white / per input / reached |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {r['imps']} | {r['weights']} | {r['white_squares']} | "
                     f"{r['outputs_per_input']:.3g} | {r['outputs_reached']} / 16 | {r['white_squares_dense']} / "
                     f"{r['outputs_per_input_dense']:.3g} / {r['outputs_reached_dense']} |")
    lines += ["", "Observation 1: distinct firing patterns under a constant input", "",
              "| T | inputs | IMP = 0 | IMP free in [-1, 1] | possible |", "|---:|---|---:|---:|---:|"]
    for r in obs_rows:
        lines.append(f"| {r['T']} | {r['inputs']} | {r['imp_0']} | {r['imp_free']} | {r['possible']} |")
    lines += ["", f"Spike trains under the constant input {OBS_INPUT:g} ({OBS_STEPS} steps), one IMP per row:", "",
              "| IMP | spikes | first spike at step | count |", "|---:|---|---:|---:|"]
    for imp, train in zip(OBS_IMPS, trains):
        steps = (train.nonzero().flatten() + 1).tolist()
        bits = "".join(str(int(b)) for b in train.tolist())
        lines.append(f"| {imp:g} | `{bits}` | {steps[0] if steps else '-'} | {len(steps)} |")
    return "\n".join(lines) + "\n"


def plot(grids: dict, trains: torch.Tensor, out: Path) -> bool:
    """mapping.png (Figure 3's three grids) and observation1.png; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [pattern_name(i) for i in range(2 ** T_MAPPING)]
    fig, axes = plt.subplots(1, len(PANELS), figsize=(15, 5.4))
    for ax, panel in zip(axes, PANELS):
        ax.imshow(grids[panel.name], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.xaxis.tick_top()
        ax.xaxis.set_label_position("top")
        ax.set_xlabel("input pattern (steps 1-4)")
        ax.set_ylabel("output pattern")
        ax.set_title(f"{panel.label}: {int(grids[panel.name].sum())} white", y=-0.08)
    fig.tight_layout()
    fig.savefig(out / "mapping.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.imshow(trains.numpy(), cmap="gray_r", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(OBS_STEPS), [str(t + 1) for t in range(OBS_STEPS)])
    ax.set_yticks(range(len(OBS_IMPS)), [f"{k}/8" for k in range(len(OBS_IMPS))])
    ax.set_xlabel("step")
    ax.set_ylabel("IMP")
    ax.set_title(f"IF neurons under the constant input {OBS_INPUT:g}: the IMP sets the phase (black = spike)")
    fig.tight_layout()
    fig.savefig(out / "observation1.png", dpi=120)
    plt.close(fig)
    return True


def run(out: Path) -> tuple[list[dict], list[dict]]:
    out.mkdir(parents=True, exist_ok=True)
    rows, grids = summarize()
    obs_rows = observation1_rows()
    trains = observation1_trains()
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    names = [pattern_name(i) for i in range(2 ** T_MAPPING)]
    for name, grid in grids.items():
        with open(out / f"mapping_{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["output \\ input"] + names)
            writer.writerows([names[i]] + grid[i].astype(int).tolist() for i in range(len(names)))
    (out / "results.md").write_text(tables(rows, obs_rows, trains))
    plot(grids, trains, out)
    return rows, obs_rows


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snnfast study imp-patterns", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="accepted for symmetry with the other studies "
                   "(this one takes seconds either way)")
    p.add_argument("--out", type=Path, default=Path("runs") / "study-imp-patterns", help="results folder")
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    rows, obs_rows = run(args.out)
    print((args.out / "results.md").read_text())
    print("The paper (Figure 3) shows the grids without counts: with IMP = 0 the IF neuron reaches few "
          "output patterns; IMP = 0.25 and a learnable IMP add mappings. Observation 1: new firing "
          "patterns from adjusting the IMP under a constant input.")
    print(f"Results in {args.out}/ (results.md, results.csv, mapping.png, mapping_*.csv, observation1.png)")
    return rows, obs_rows
