"""What recurrent_lif's events cost: the recurrent op alone, the op that also emits its spikes
as events from the CPU steps' pass (torch.ops.snnfast.recurrent_lif_events), and the op
followed by the conversion of its spikes (spikes_to_events), interleaved in one process.

    python bench/bench_recurrent_events.py [--T 200] [--B 32] [--N 256] [--gains 1.2 1.6]

The input is gain x U(0, 1) current (the gain sets the spike rate, printed), V ~ N(0, 0.02^2),
beta = alpha = 0.5, hard reset, no autograd (the inference op beside the events op without
the membrane trace). Prints a markdown table with the machine, the date and the command.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from snnfast.utils import benchmark  # noqa: E402

# beta, alpha, threshold, u0, reset, v_reset, detach_reset, surrogate, its parameter, detach_recurrent
NEURON_ARGS = (torch.tensor(0.5), torch.tensor(0.5), torch.tensor(1.0), None, "hard", 0.0, False, "sigmoid", 4.0,
               False)


def measure(T, B, N, gain, rounds):
    x = gain * torch.rand(T, B, N, generator=torch.Generator().manual_seed(0))
    V = 0.02 * torch.randn(N, N, generator=torch.Generator().manual_seed(1))
    ops = torch.ops.snnfast

    def alone():
        return ops.recurrent_lif_inference(x, V, *NEURON_ARGS)

    def emitted():
        return ops.recurrent_lif_events(x, V, *NEURON_ARGS, False)

    def converted():
        return ops.spikes_to_events(alone()[0].view(T * B, N), False)

    spikes = alone()[0]
    _, _, _, offsets, indices = emitted()
    want = converted()
    if not (torch.equal(offsets, want[0]) and torch.equal(indices, want[1])):
        raise AssertionError("the emitted events differ from the converted ones")
    times = benchmark.interleaved_times([alone, emitted, converted], torch.device("cpu"), rounds, min_sample_s=0.0)
    return float(spikes.mean()), [(min(t) * 1e3, statistics.median(t) * 1e3) for t in times]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--B", type=int, default=32)
    parser.add_argument("--N", type=int, default=256)
    parser.add_argument("--gains", type=float, nargs="+", default=[1.2, 1.6, 2.4])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{datetime.date.today()}, {benchmark.machine()}; uptime: {uptime}")
    print(f"command: python bench/bench_recurrent_events.py {' '.join(argv or sys.argv[1:])}\n")
    print(f"T, B, N = {args.T}, {args.B}, {args.N}; ms, best / median\n")
    print("| spike rate | recurrent_lif_inference | recurrent_lif_events | + spikes_to_events |")
    print("|---:|---:|---:|---:|")
    for gain in args.gains:
        rate, stats = measure(args.T, args.B, args.N, gain, args.rounds)
        print(f"| {rate:.1%} | " + " | ".join(f"{best:.2f} / {median:.2f}" for best, median in stats) + " |")


if __name__ == "__main__":
    main()
