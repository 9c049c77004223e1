"""The fused op where users feel its fixed costs and its memory: inference, and short sequences.

    python bench/bench_inference.py [--rounds 9] [--out FILE] [--threads N] [--quick]

Two tables, each timed in one process with snnfast.utils.benchmark's interleaved timer, under
glibc's defaults (no environment variable, nothing told to keep freed memory):

1. The forward under torch.no_grad at [1000, 64, 1024] float32: the inference path (no
   membrane trace: read x, write the spikes) beside the training path's forward (which also
   writes the trace; `return_membrane=True` asks for it), against the 2-pass memory floor (x
   read, as many bytes written: a copy into warm memory, timed in the same rounds; the ratio
   is the median over the rounds, benchmark.paired_ratio), and the process's peak memory during
   one inference call beside the size of the spikes.
2. fwd + bwd at T = 1, 2, 4, 8 (B = 64, N = 1024): the fused op against the per-step loops
   users have (snnfast.reference.lif and SpikingJelly's LIFNode, both one PyTorch step per
   time step), and against the 6-pass floor of a fused fwd + bwd (three copies, timed in the
   same rounds).

The neuron is the one of every LIF benchmark (snnfast.utils.benchmark.NEURON).
"""
import argparse
import datetime
import os
import statistics
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import snnfast  # noqa: E402
from snnfast import output_cache  # noqa: E402
from snnfast.utils import benchmark, memory  # noqa: E402

CPU = torch.device("cpu")
B, N = 64, 1024


def ms(seen) -> str:
    return f"{min(seen) * 1e3:.2f} ({statistics.median(seen) * 1e3:.2f})"


def inference_table(T: int, rounds: int) -> list:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(T, B, N, generator=generator) * 1.5 + 0.8
    warm = torch.empty_like(x)

    def inference():
        with torch.no_grad():
            snnfast.lif(x, **benchmark.NEURON)

    def with_trace():
        with torch.no_grad():
            snnfast.lif(x, **benchmark.NEURON, return_membrane=True)

    def floor():
        # The 2-pass floor as this machine runs it in this round: read x, write as many bytes
        # as the spikes into memory already mapped. Timed beside the op rather than taken from
        # a copy rate measured once: the rate swings by a third with the load.
        warm.copy_(x)

    inference_s, trace_s, floor_s = benchmark.interleaved_times([inference, with_trace, floor], CPU, rounds)

    def vs_floor(seen):
        median, low, high = benchmark.paired_ratio(seen, floor_s)
        return f"{median:.2f}x ({low:.2f}-{high:.2f}x)"

    lines = [
        f"| forward under no_grad, [{T}, {B}, {N}] float32 | ms, best (median) "
        "| vs 2-pass floor: median of the rounds (quartiles) |",
        "|---|---:|---:|",
        f"| inference path (spikes only) | {ms(inference_s)} | {vs_floor(inference_s)} |",
        f"| training path's forward (spikes + membrane trace) | {ms(trace_s)} | {vs_floor(trace_s)} |",
        f"| 2-pass floor (x copied into warm memory, in the same rounds) | {ms(floor_s)} | 1.00x |",
    ]
    if memory.cpu_peak_supported():
        output_cache.release()
        memory.reset_peak(CPU)
        before = memory.current_bytes(CPU)
        inference()
        peak = memory.peak_bytes(CPU) - before
        lines += ["", f"Peak memory of one inference call: +{peak / 2**20:.0f} MiB (process RSS); "
                      f"the spikes are {x.numel() * 4 / 2**20:.0f} MiB."]
    return lines


def small_t_table(Ts, rounds: int) -> list:
    found = benchmark.contenders(include_reference=True)
    names = [c.name for c in found]
    lines = [
        "| T | " + " | ".join(f"{n}, ms best (median)" for n in names)
        + " | fused vs 6-pass floor: median of the rounds (quartiles) | "
        + " | ".join(f"{n} / fused" for n in names[1:]) + " |",
        "|---:|" + "---:|" * (2 * len(names)),
    ]
    for T in Ts:
        generator = torch.Generator().manual_seed(T)
        x = (torch.randn(T, B, N, generator=generator) * 1.5 + 0.8).requires_grad_(True)
        grad = torch.randn(T, B, N, generator=generator)
        warm = [torch.empty_like(grad) for _ in range(3)]

        def step(c):
            def call():
                c.run(x).backward(grad)
                x.grad = None
            return call

        def floor():
            # The 6 passes of a fused fwd + bwd (x read, spikes and trace written; the spikes'
            # gradient and the trace read, x's gradient written) as three copies into memory
            # already mapped, timed in the same rounds as the op (see inference_table).
            for out, src in zip(warm, (x.detach(), x.detach(), grad)):
                out.copy_(src)

        *seen, floor_s = benchmark.interleaved_times([step(c) for c in found] + [floor], CPU, rounds)
        median, low, high = benchmark.paired_ratio(seen[0], floor_s)
        best = [min(s) for s in seen]
        lines.append(f"| {T} | " + " | ".join(ms(s) for s in seen) + f" | {median:.2f}x ({low:.2f}-{high:.2f}x) | "
                     + " | ".join(f"{b / best[0]:.1f}x" for b in best[1:]) + " |")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per workload (default 9)")
    parser.add_argument("--T", type=int, default=1000, help="time steps of the inference table (default 1000)")
    parser.add_argument("--quick", action="store_true", help="T = 50 for inference, T in 1, 8, two rounds: a smoke run")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            parser.error(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    Ts = (1, 2, 4, 8)
    if args.quick:
        args.T, args.rounds, Ts = 50, 2, (1, 8)
    rate = benchmark.copy_rate(CPU)
    lines = [
        f"Machine: {benchmark.machine()}; {datetime.date.today().isoformat()}; load average "
        f"{benchmark.load_average()} at the start; glibc malloc defaults; copy rate {rate / 1e9:.1f} GB/s.",
        f"Neuron: {benchmark.describe_neuron(**benchmark.NEURON)}; float32; {args.rounds} interleaved rounds.",
        "",
        *inference_table(args.T, args.rounds),
        "",
        *small_t_table(Ts, args.rounds),
    ]
    benchmark.write_report("\n".join(lines), args.out)


if __name__ == "__main__":
    main()
