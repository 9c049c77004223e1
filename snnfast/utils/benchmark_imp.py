"""`snnfast bench imp`: what a learnable initial membrane potential (IMP) costs.

The protocol of the IMP paper's Figure 6 (Shen et al.; the authors' `if_backward.py`): an IF
neuron (beta = 1, soft reset, detach_reset) on inputs of shape [T, N], T in {2, 4, 8, 16, 32},
N in {2^8, 2^12, 2^16, 2^20}, with and without a learnable per-neuron u0, forward and
forward + backward. snnfast's fused op runs beside SpikingJelly 2.0's `IFNode`, whose IMP is
the paper's `IFIMP` way: the membrane set to the learnable u0 after each `reset()`.

Every contender runs on the same input in one process, and the four contenders of a shape are
timed in interleaved rounds (one call of each per round), so that the machine's load falls on
all of them alike; the overhead of IMP is the ratio of the best times with and without it,
and the median over the rounds of the ratio of the two calls of a round (a burst of load that
slows both cancels there), beside the share of the fused op's memory traffic that u0 adds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch

from .. import ops
from ..surrogate import Sigmoid
from .benchmark import (choose_allocator, describe_neuron, interleaved_times, load_average, machine,
                        paired_ratio, write_report)

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
    # Seconds of each round, for the overheads' paired ratios (benchmark.paired_ratio).
    forward_s: list[float] = field(default_factory=list)
    forward_backward_s: list[float] = field(default_factory=list)


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
            1e3 * min(fb), 1e3 * statistics.median(fb), f, fb)
        for c, f, fb in zip(found, fwd, fwd_bwd)
    ]


def traffic_share(T: int) -> float:
    """What a learnable u0 adds to the fused op's memory traffic in fwd + bwd, as a fraction:
    u0 read forward and backward and its gradient written (3 N values, at B = 1) over x, the
    spikes and the trace written forward, the spikes' gradient and the trace read and x's
    gradient written backward, and u_T (6 T N + N). The overhead a kernel bound by memory
    bandwidth cannot go below, whatever its code."""
    return 3 / (6 * T + 1)


def overheads(rows: list[Row]) -> list[dict]:
    """One line per (T, N, contender): the times without and with IMP and the overhead in %:
    of the best times, and the median (with quartiles) of the rounds' paired ratios."""
    by_key = {(r.T, r.N, r.contender, r.imp): r for r in rows}
    lines = []
    for r in rows:
        if r.imp:
            continue
        with_imp = by_key.get((r.T, r.N, r.contender, True))
        if with_imp is None:
            continue
        line = {
            "T": r.T, "N": r.N, "contender": r.contender,
            "fwd_ms": r.forward_best_ms, "fwd_imp_ms": with_imp.forward_best_ms,
            "fwd_overhead_pct": 100 * (with_imp.forward_best_ms / r.forward_best_ms - 1),
            "fwd_bwd_ms": r.forward_backward_best_ms,
            "fwd_bwd_imp_ms": with_imp.forward_backward_best_ms,
            "fwd_bwd_overhead_pct": 100 * (with_imp.forward_backward_best_ms / r.forward_backward_best_ms - 1),
            "traffic_share_pct": 100 * traffic_share(r.T),
        }
        if r.forward_backward_s and len(r.forward_backward_s) == len(with_imp.forward_backward_s):
            median, low, high = paired_ratio(with_imp.forward_backward_s, r.forward_backward_s)
            line.update(fwd_bwd_paired_pct=100 * (median - 1), fwd_bwd_paired_low_pct=100 * (low - 1),
                        fwd_bwd_paired_high_pct=100 * (high - 1))
        lines.append(line)
    return lines


def table(lines: list[dict]) -> str:
    out = [
        "| T | N | contender | fwd ms | fwd ms, IMP | fwd overhead | fwd+bwd ms | fwd+bwd ms, IMP "
        "| fwd+bwd overhead (best) | (paired: median of rounds, quartiles) | u0's share of the fused op's traffic |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in lines:
        paired = (f"{d['fwd_bwd_paired_pct']:+.1f} % ({d['fwd_bwd_paired_low_pct']:+.1f} to "
                  f"{d['fwd_bwd_paired_high_pct']:+.1f})" if "fwd_bwd_paired_pct" in d else "-")
        out.append(
            f"| {d['T']} | 2^{d['N'].bit_length() - 1} | {d['contender']} | {d['fwd_ms']:.3f} | "
            f"{d['fwd_imp_ms']:.3f} | {d['fwd_overhead_pct']:+.1f} % | {d['fwd_bwd_ms']:.3f} | "
            f"{d['fwd_bwd_imp_ms']:.3f} | {d['fwd_bwd_overhead_pct']:+.1f} % | {paired} | "
            f"{d['traffic_share_pct']:.1f} % |"
        )
    return "\n".join(out)


def plot(lines: list[dict], path: str) -> None:
    """Top: fwd + bwd against T with and without IMP; bottom: the paired overhead of IMP, and
    u0's share of the fused op's traffic (the floor of a bandwidth-bound kernel)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    Ns = sorted({d["N"] for d in lines})
    names = sorted({d["contender"] for d in lines})
    fig, axes = plt.subplots(2, len(Ns), figsize=(4 * len(Ns), 6.4), squeeze=False, sharex=True)
    for col, N in enumerate(Ns):
        top, bottom = axes[0][col], axes[1][col]
        for name, colour in zip(names, ("tab:blue", "tab:orange", "tab:green")):
            sel = sorted((d for d in lines if d["N"] == N and d["contender"] == name), key=lambda d: d["T"])
            Ts = [d["T"] for d in sel]
            top.plot(Ts, [d["fwd_bwd_ms"] for d in sel], "o-", color=colour, label=name)
            top.plot(Ts, [d["fwd_bwd_imp_ms"] for d in sel], "s--", color=colour, label=f"{name} + IMP")
            paired = [d for d in sel if "fwd_bwd_paired_pct" in d]
            if paired:
                median = [d["fwd_bwd_paired_pct"] for d in paired]
                bottom.errorbar([d["T"] for d in paired], median,
                                yerr=[[m - d["fwd_bwd_paired_low_pct"] for m, d in zip(median, paired)],
                                      [d["fwd_bwd_paired_high_pct"] - m for m, d in zip(median, paired)]],
                                fmt="o-", color=colour, capsize=3, label=name)
        Ts = sorted({d["T"] for d in lines})
        bottom.plot(Ts, [100 * traffic_share(T) for T in Ts], "k:", label="u0's share of the traffic")
        bottom.axhline(0, color="grey", lw=0.8)
        top.set_xscale("log", base=2)
        top.set_yscale("log")
        top.set_title(f"N = 2^{N.bit_length() - 1}")
        bottom.set_xlabel("T")
        for ax in (top, bottom):
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("fwd + bwd, ms (best)")
    axes[1][0].set_ylabel("IMP overhead, % (paired median, quartiles)")
    axes[0][-1].legend(fontsize=7)
    axes[1][-1].legend(fontsize=7)
    fig.suptitle("IF neuron with and without a learnable IMP (top: solid without, dashed with)")
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
        f"Times: best of {rounds} interleaved rounds; overhead = with IMP / without - 1, of the best "
        f"times and, paired, the median (quartiles) over the rounds of the ratio of the two calls "
        f"that ran side by side.\n"
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
