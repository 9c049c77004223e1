"""Forward + backward time of snnfast.recurrent_lif against the per-step PyTorch loop a user
would write (nn.Linear(N, N, bias=False) for V plus the reference neuron step), side by side
in one process: the two alternate within each round, so load from other processes hits both.

    python bench/bench_recurrent.py                      # CPU, and CUDA when present
    python bench/bench_recurrent.py --device cpu --N 200 --T 100 --rounds 5
    python bench/bench_recurrent.py --quick                          # a smoke run

Prints a markdown table with the machine, the date and the command.
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import snnfast  # noqa: E402
from snnfast import reference, surrogate  # noqa: E402
from snnfast.utils import benchmark  # noqa: E402

# The recurrent layer's neuron (fires about 20% of the steps with the weights of make()).
BETA = 0.9
NEURON = dict(beta=BETA, alpha=1.0, threshold=1.0, reset="hard", v_reset=0.0, surrogate=surrogate.Rectangle(),
              recurrent=True)


def make(B, N, T, device, seed=0):
    torch.manual_seed(seed)
    x = (0.6 * torch.randn(T, B, N, device=device) + 0.3).requires_grad_()
    linear = torch.nn.Linear(N, N, bias=False, device=device)
    with torch.no_grad():  # strong enough that the recurrence matters (about 20% fire)
        linear.weight.normal_(0.0, 1.0 / N**0.5)
    beta = torch.tensor(BETA, device=device, requires_grad=True)
    grad_spikes = torch.randn(T, B, N, device=device)
    return x, linear, beta, grad_spikes


def per_step_loop(x, linear, beta):
    """The recurrent layer as a user writes it in PyTorch: one Linear and one neuron step per t."""
    u = torch.zeros(x.shape[1:], device=x.device)
    spikes, o = [], None
    for x_t in x.unbind(0):
        current = x_t if o is None else x_t + linear(o)
        o, _, u = reference.lif_step(u, current, beta, NEURON["alpha"], NEURON["threshold"], NEURON["reset"],
                                     NEURON["v_reset"], False, NEURON["surrogate"])
        spikes.append(o)
    return torch.stack(spikes)


def fused(x, linear, beta):
    return snnfast.recurrent_lif(x, linear.weight, beta, alpha=NEURON["alpha"], threshold=NEURON["threshold"],
                                 reset=NEURON["reset"], v_reset=NEURON["v_reset"], surrogate=NEURON["surrogate"])


def bench(device, B, N, T, rounds):
    """(loop ms, fused ms) as (best, median) of fwd + bwd over interleaved rounds, the spike
    rate, and the fraction of spikes where the two differ."""
    x, linear, beta, grad_spikes = make(B, N, T, device)
    with torch.no_grad():
        spikes_loop = per_step_loop(x, linear, beta)
        mismatch = (fused(x, linear, beta) != spikes_loop).float().mean().item()

    def fwd_bwd(fn):
        def call():
            for t in (x, linear.weight, beta):
                t.grad = None
            fn(x, linear, beta).backward(grad_spikes)
        return call

    loop, fast = benchmark.interleaved_times([fwd_bwd(per_step_loop), fwd_bwd(fused)], torch.device(device),
                                             rounds, warmup=1, min_sample_s=0.0)
    best_median = lambda times: (min(times) * 1e3, statistics.median(times) * 1e3)  # noqa: E731
    return best_median(loop), best_median(fast), spikes_loop.mean().item(), mismatch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--B", type=int, default=100)
    parser.add_argument("--N", type=int, nargs="+", default=[64, 128, 200, 512])
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds per size")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    parser.add_argument("--quick", action="store_true", help="one small size (B 8, N 64, T 50, 2 rounds): a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.B, args.N, args.T, args.rounds = 8, [64], [50], 2
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]

    command = " ".join(["python", "bench/bench_recurrent.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"`{command}`, {datetime.date.today().isoformat()}, snnfast {snnfast.__version__}, "
          f"load average {benchmark.load_average()}")
    print(f"Neuron: {benchmark.describe_neuron(**NEURON)}; fwd + bwd, ms, best (median) of "
          f"{args.rounds} interleaved rounds\n")
    print("| machine | B | N | T | per-step loop | recurrent_lif | speed-up (best) | spike rate |")
    print("|---|---|---|---|---|---|---|---|")
    for device in devices:
        for T in args.T:
            for N in args.N:
                loop, fast, rate, mismatch = bench(device, args.B, N, T, args.rounds)
                note = "" if mismatch == 0 else f" ({mismatch:.1e} of spikes differ)"
                print(f"| {benchmark.machine(device)} | {args.B} | {N} | {T} | {loop[0]:.1f} ({loop[1]:.1f}) | "
                      f"{fast[0]:.1f} ({fast[1]:.1f}) | {loop[0] / fast[0]:.1f}x | {rate:.2f}{note} |", flush=True)


if __name__ == "__main__":
    main()
