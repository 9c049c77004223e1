"""What glibc's defaults cost the fused op at large T, with and without snnfast's output cache.

    python bench/bench_allocator.py [--T 1000] [--rounds 7] [--out FILE]

Runs in one process, under glibc's defaults first (what a user gets) and then with glibc told
to keep freed memory (`snnfast.utils.benchmark.keep_freed_memory`, the "kept memory" figure of
docs/benchmarks.md). In each phase, each workload runs with the output cache on and off
(`snnfast.output_cache.set_limit`), the two interleaved round by round (snnfast.utils.benchmark's
timer); a sample is one call after one untimed call under the same setting, the steady state
of a training loop.
Workloads: `snnfast.lif` fwd + bwd and its forward under no_grad at [T, 64, 1024] float32 (the
neuron of every LIF benchmark, snnfast.utils.benchmark.NEURON), and one training step (forward, backward, SGD) of bench_memory.py's 700-256-20 MLP (nn.Linear +
snnfast.lif, B = 32).
"""
import argparse
import datetime
import os
import statistics
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import bench_memory  # noqa: E402

import snnfast  # noqa: E402
from snnfast import output_cache  # noqa: E402
from snnfast.utils import benchmark  # noqa: E402


def workloads(T: int):
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(T, 64, 1024, generator=generator) * 1.5 + 0.8).requires_grad_(True)
    grad = torch.randn(T, 64, 1024, generator=generator)
    def fwd_bwd():
        snnfast.lif(x, **benchmark.NEURON).backward(grad)
        x.grad = None

    def fwd_no_grad():
        with torch.no_grad():
            snnfast.lif(x, **benchmark.NEURON)

    model = bench_memory.build("snnfast", T)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    mlp_x, labels = bench_memory.make_input(T)

    def mlp_step():
        bench_memory.train_step("snnfast", model, optimizer, mlp_x, labels)

    floor_bytes = x.numel() * 4
    return [
        (f"snnfast.lif fwd+bwd [{T}, 64, 1024]", fwd_bwd, 6 * floor_bytes),
        # The inference path reads x and writes the spikes (no membrane trace under no_grad).
        (f"snnfast.lif fwd, no_grad [{T}, 64, 1024]", fwd_no_grad, 2 * floor_bytes),
        (f"MLP 700-256-20 train step, T = {T}, B = {bench_memory.B}", mlp_step, None),
    ]


def under_limit(fn, nbytes: int):
    """fn run with the output cache capped at nbytes (0: off)."""
    def call():
        output_cache.set_limit(nbytes)
        fn()
    return call


def phase(T: int, rounds: int, limit: int) -> dict:
    found = {}
    settings = {"cache on": limit, "cache off": 0}
    for name, fn, _ in workloads(T):
        # settle=1: each sample follows one untimed call under its own setting.
        times = benchmark.interleaved_times([under_limit(fn, n) for n in settings.values()], torch.device("cpu"),
                                            rounds, warmup=1, min_sample_s=0.0, settle=1)
        found[name] = dict(zip(settings, times))
    output_cache.set_limit(limit)
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, default=1000, help="time steps (default 1000)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per workload")
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--quick", action="store_true", help="T = 50, two rounds: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.T, args.rounds = 50, 2
    limit = output_cache.stats().limit_bytes
    rate = benchmark.copy_rate(torch.device("cpu"))
    results = {"glibc defaults": phase(args.T, args.rounds, limit)}
    if not benchmark.keep_freed_memory():
        sys.exit("bench_allocator: not glibc: no kept-memory phase to compare with")
    results["glibc keeps freed memory"] = phase(args.T, args.rounds, limit)
    lines = [
        f"Machine: {benchmark.machine()}; {datetime.date.today().isoformat()}; load average "
        f"{benchmark.load_average()} at the start; copy rate {rate / 1e9:.1f} GB/s; cache limit "
        f"{limit >> 20} MiB; best (median) of {args.rounds} interleaved rounds, ms.",
        f"Neuron: {benchmark.describe_neuron(**benchmark.NEURON)} (the MLP's too).",
        "",
        "| workload | glibc | cache | ms, best (median) | vs kept memory, cache off (best) | vs memory floor |",
        "|---|---|---|---:|---:|---:|",
    ]
    kept = results["glibc keeps freed memory"]
    for name, _, floor in workloads(args.T):
        reference = min(kept[name]["cache off"])
        for malloc, by_name in results.items():
            for setting, seen in by_name[name].items():
                best = min(seen)
                floor_text = f"{best / (floor / rate):.2f}x" if floor else "-"
                lines.append(f"| {name} | {malloc} | {setting} | {best * 1e3:.1f} "
                             f"({statistics.median(seen) * 1e3:.1f}) | {best / reference:.2f}x | {floor_text} |")
    benchmark.write_report("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
