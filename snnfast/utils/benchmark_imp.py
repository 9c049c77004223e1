"""`snnfast bench imp`: what a learnable initial membrane potential (IMP) costs.

The protocol of the IMP paper's Figure 6 (Shen et al.; the authors' `if_backward.py`): an IF
neuron (beta = 1, soft reset, detach_reset) on inputs of shape [T, N], T in {2, 4, 8, 16, 32},
N in {2^8, 2^12, 2^16, 2^20}, with and without a learnable per-neuron u0, forward and
forward + backward. snnfast's fused op runs beside SpikingJelly 2.0's `IFNode`, whose IMP is
the paper's `IFIMP` way: the membrane set to the learnable u0 after each `reset()`.

Every contender runs on the same input in one process, and the four contenders of a shape are
timed in interleaved rounds (one call of each per round), so that the machine's load falls on
all of them alike; the overhead of IMP is the ratio of the best times with and without it.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch

from .. import ops
from ..surrogate import Sigmoid
from .benchmark import choose_allocator, describe_neuron, interleaved_times, load_average, machine, write_report

T_GRID = (2, 4, 8, 16, 32)
N_GRID = (2**8, 2**12, 2**16, 2**20)
QUICK_T_GRID = (4, 16)
QUICK_N_GRID = (2**12, 2**16, 2**20)

# The IF neuron of the protocol, in docs/neuron.md's terms. SpikingJelly's IFNode(v_reset=None)
# is the same neuron (h = u + x; soft reset by the threshold) with its default sigmoid
# surrogate (SpikingJelly's alpha = 4: our sharpness).
THRESHOLD = 1.0
SURROGATE_SHARPNESS = 4.0
NEURON = dict(beta=1.0, threshold=THRESHOLD, reset="soft", detach_reset=True,
              surrogate=Sigmoid(SURROGATE_SHARPNESS))
# The IMP paper initialises the learnable u0 uniformly in (0.4, 0.6) (its configs); any value
# times the same, a fixed draw keeps runs comparable.
IMP_LOW, IMP_HIGH = 0.4, 0.6


@dataclass
class Contender:
    name: str
    imp: bool
    # run(x) -> spikes, for x of shape [T, 1, N]; u0 (if any) is a leaf of shape [N].
    run: Callable[[torch.Tensor], torch.Tensor]
    u0: Optional[torch.Tensor] = None


def _snnfast(N: int, imp: bool, device: torch.device) -> Contender:
    u0 = _imp_parameter(N, device) if imp else None

    def run(x):
        return ops.lif(x, **NEURON, u0=u0)

    return Contender("snnfast.lif (fused)", imp, run, u0)


def _spikingjelly(N: int, imp: bool, device: torch.device) -> Optional[Contender]:
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except Exception:  # not installed, or an install whose optional deps are missing
        return None
    node = neuron.IFNode(v_threshold=THRESHOLD, v_reset=None, detach_reset=True, step_mode="m",
                         surrogate_function=surrogate.Sigmoid(alpha=SURROGATE_SHARPNESS)).to(device)
    u0 = _imp_parameter(N, device) if imp else None

    def run(x):
        node.reset()
        if u0 is not None:
            node.v = u0.expand(x.shape[1:])
        return node(x)

    return Contender("spikingjelly 2.0 IFNode", imp, run, u0)


def _imp_parameter(N: int, device: torch.device) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    u0 = torch.rand(N, generator=generator) * (IMP_HIGH - IMP_LOW) + IMP_LOW
    return u0.to(device).requires_grad_(True)


def contenders(N: int, device: torch.device) -> list[Contender]:
    found = []
    for make in (_snnfast, _spikingjelly):
        for imp in (False, True):
            c = make(N, imp, device)
            if c is not None:
                found.append(c)
    return found


@dataclass
class Row:
    T: int
    N: int
    contender: str
    imp: bool
    forward_best_ms: float
    forward_median_ms: float
    forward_backward_best_ms: float
    forward_backward_median_ms: float


def measure(T: int, N: int, device: torch.device, rounds: int) -> list[Row]:
    generator = torch.Generator().manual_seed(0)
    # Input current around the threshold, so that the neurons fire at a typical rate.
    x = (torch.randn(T, 1, N, generator=generator) * 0.5 + 0.5).to(device).requires_grad_(True)
    grad = torch.randn(T, 1, N, generator=generator).to(device)
    found = contenders(N, device)

    def forward(c):
        def call():
            with torch.no_grad():
                c.run(x)
        return call

    def forward_backward(c):
        def call():
            c.run(x).backward(grad)
            x.grad = None
            if c.u0 is not None:
                c.u0.grad = None
        return call

    fwd = interleaved_times([forward(c) for c in found], device, rounds)
    fwd_bwd = interleaved_times([forward_backward(c) for c in found], device, rounds)
    return [
        Row(T, N, c.name, c.imp, 1e3 * min(f), 1e3 * statistics.median(f),
            1e3 * min(fb), 1e3 * statistics.median(fb))
        for c, f, fb in zip(found, fwd, fwd_bwd)
    ]


def overheads(rows: list[Row]) -> list[dict]:
    """One line per (T, N, contender): the times without and with IMP and the overhead in %."""
    by_key = {(r.T, r.N, r.contender, r.imp): r for r in rows}
    lines = []
    for r in rows:
        if r.imp:
            continue
        with_imp = by_key.get((r.T, r.N, r.contender, True))
        if with_imp is None:
            continue
        lines.append({
            "T": r.T, "N": r.N, "contender": r.contender,
            "fwd_ms": r.forward_best_ms, "fwd_imp_ms": with_imp.forward_best_ms,
            "fwd_overhead_pct": 100 * (with_imp.forward_best_ms / r.forward_best_ms - 1),
            "fwd_bwd_ms": r.forward_backward_best_ms,
            "fwd_bwd_imp_ms": with_imp.forward_backward_best_ms,
            "fwd_bwd_overhead_pct": 100 * (with_imp.forward_backward_best_ms / r.forward_backward_best_ms - 1),
            "fwd_bwd_median_overhead_pct": 100 * (with_imp.forward_backward_median_ms
                                                  / r.forward_backward_median_ms - 1),
        })
    return lines


def table(lines: list[dict]) -> str:
    out = [
        "| T | N | contender | fwd ms | fwd ms, IMP | fwd overhead | fwd+bwd ms | fwd+bwd ms, IMP "
        "| fwd+bwd overhead (best) | (median) |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in lines:
        out.append(
            f"| {d['T']} | 2^{d['N'].bit_length() - 1} | {d['contender']} | {d['fwd_ms']:.3f} | "
            f"{d['fwd_imp_ms']:.3f} | {d['fwd_overhead_pct']:+.1f} % | {d['fwd_bwd_ms']:.3f} | "
            f"{d['fwd_bwd_imp_ms']:.3f} | {d['fwd_bwd_overhead_pct']:+.1f} % | "
            f"{d['fwd_bwd_median_overhead_pct']:+.1f} % |"
        )
    return "\n".join(out)


def plot(lines: list[dict], path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ns = sorted({d["N"] for d in lines})
    names = sorted({d["contender"] for d in lines})
    fig, axes = plt.subplots(1, len(Ns), figsize=(4 * len(Ns), 3.6), squeeze=False)
    for ax, N in zip(axes[0], Ns):
        for name, colour in zip(names, ("tab:blue", "tab:orange", "tab:green")):
            sel = sorted((d for d in lines if d["N"] == N and d["contender"] == name), key=lambda d: d["T"])
            Ts = [d["T"] for d in sel]
            ax.plot(Ts, [d["fwd_bwd_ms"] for d in sel], "o-", color=colour, label=name)
            ax.plot(Ts, [d["fwd_bwd_imp_ms"] for d in sel], "s--", color=colour, label=f"{name} + IMP")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("T")
        ax.set_title(f"N = 2^{N.bit_length() - 1}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("fwd + bwd, ms (best)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("IF neuron with and without a learnable IMP (solid: without, dashed: with)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(T_grid, N_grid, device: torch.device, rounds: int, allocator: str, progress: bool = True):
    shapes = [(T, N) for N in N_grid for T in T_grid]
    rows = []
    for i, (T, N) in enumerate(shapes):
        if progress:
            print(f"[{i + 1}/{len(shapes)}] T={T} N=2^{N.bit_length() - 1} ...", file=sys.stderr, flush=True)
        rows += measure(T, N, device, rounds)
    lines = overheads(rows)
    header = (
        f"Machine: {machine(device)}; device {device}; {datetime.date.today().isoformat()}; "
        f"load average {load_average()}.\n"
        f"Neuron: IF, that is {describe_neuron(**NEURON)}; input [T, 1, N] float32; "
        f"IMP: a learnable u0 of shape [N].\n"
        f"Times: best (and median) of {rounds} interleaved rounds; overhead = with IMP / without - 1.\n"
        f"CPU memory: {allocator}.\n"
    )
    return rows, lines, header + "\n" + table(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="snnfast bench imp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"T in {QUICK_T_GRID}, N in 2^12, 2^16, 2^20 (under two minutes on 2 cores)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="interleaved timing rounds per shape (default: 5 with --quick, 11 otherwise)")
    parser.add_argument("--out", help="write the table (markdown) here, the rows beside it as .json")
    parser.add_argument("--plot", help="write the fwd + bwd times against T as a PNG here")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (otherwise it is told to keep freed memory, "
                             "as in `snnfast bench`)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (5 if args.quick else 11)
    if rounds < 1:
        parser.error(f"--rounds must be at least 1, got {rounds}")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    allocator = choose_allocator(args.default_malloc)
    T_grid, N_grid = (QUICK_T_GRID, QUICK_N_GRID) if args.quick else (T_GRID, N_GRID)
    rows, lines, text = report(T_grid, N_grid, device, rounds, allocator)
    write_report(text, args.out)
    if args.out:
        with open(args.out.rsplit(".", 1)[0] + ".json", "w") as f:
            json.dump({"rows": [asdict(r) for r in rows], "overheads": lines}, f, indent=1)
    if args.plot:
        plot(lines, args.plot)
        print(f"plot: {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
