"""Forward + backward time of snnfast.recurrent_lif against the per-step PyTorch loop a user
would write (nn.Linear(N, N, bias=False) for V plus the reference neuron step), side by side
in one process: the two alternate within each round, so load from other processes hits both.

    python bench/bench_recurrent.py                      # CPU, and CUDA when present
    python bench/bench_recurrent.py --device cpu --N 200 --T 100 --rounds 5

Prints a markdown table with the machine, the date and the command.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time

import torch

import snnfast
from snnfast import reference, surrogate


def make(B, N, T, device, seed=0):
    torch.manual_seed(seed)
    x = (0.6 * torch.randn(T, B, N, device=device) + 0.3).requires_grad_()
    linear = torch.nn.Linear(N, N, bias=False, device=device)
    with torch.no_grad():  # strong enough that the recurrence matters (about 20% fire)
        linear.weight.normal_(0.0, 1.0 / N**0.5)
    beta = torch.tensor(0.9, device=device, requires_grad=True)
    grad_spikes = torch.randn(T, B, N, device=device)
    return x, linear, beta, grad_spikes


def per_step_loop(x, linear, beta, rectangle):
    """The recurrent layer as a user writes it in PyTorch: one Linear and one neuron step per t."""
    u = torch.zeros(x.shape[1:], device=x.device)
    spikes, o = [], None
    for x_t in x.unbind(0):
        current = x_t if o is None else x_t + linear(o)
        o, _, u = reference.lif_step(u, current, beta, 1.0, 1.0, "hard", 0.0, False, rectangle)
        spikes.append(o)
    return torch.stack(spikes)


def fused(x, linear, beta, rectangle):
    return snnfast.recurrent_lif(x, linear.weight, beta, surrogate=rectangle)


def time_fwd_bwd(fn, inputs, grad_spikes, sync):
    x, linear, beta = inputs
    for t in (x, linear.weight, beta):
        t.grad = None
    sync()
    start = time.perf_counter()
    spikes = fn(x, linear, beta, surrogate.Rectangle())
    spikes.backward(grad_spikes)
    sync()
    return time.perf_counter() - start, spikes.detach()


def bench(device, B, N, T, rounds):
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    x, linear, beta, grad_spikes = make(B, N, T, device)
    inputs = (x, linear, beta)
    times = {per_step_loop: [], fused: []}
    for fn in times:  # warm-up, and the two must agree
        _, spikes = time_fwd_bwd(fn, inputs, grad_spikes, sync)
        times[fn].append(None)
        if fn is per_step_loop:
            spikes_loop = spikes
        else:
            mismatch = (spikes != spikes_loop).float().mean().item()
    for _ in range(rounds):
        for fn in times:
            times[fn].append(time_fwd_bwd(fn, inputs, grad_spikes, sync)[0])
    loop_ms = statistics.median(times[per_step_loop][1:]) * 1e3
    fused_ms = statistics.median(times[fused][1:]) * 1e3
    return loop_ms, fused_ms, spikes_loop.mean().item(), mismatch


def machine(device):
    if device == "cuda":
        return torch.cuda.get_device_name()
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    parser.add_argument("--B", type=int, default=100)
    parser.add_argument("--N", type=int, nargs="+", default=[64, 128, 200, 512])
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    devices = [d for d in devices if d == "cpu" or torch.cuda.is_available()]

    print(f"`python {' '.join(sys.argv)}`, {datetime.date.today().isoformat()}, "
          f"torch {torch.__version__}, snnfast {snnfast.__version__}\n")
    print("| device | B | N | T | per-step loop fwd+bwd (ms) | recurrent_lif fwd+bwd (ms) | speed-up | spike rate |")
    print("|---|---|---|---|---|---|---|---|")
    for device in devices:
        for T in args.T:
            for N in args.N:
                loop_ms, fused_ms, rate, mismatch = bench(device, args.B, N, T, args.rounds)
                note = "" if mismatch == 0 else f" ({mismatch:.1e} of spikes differ)"
                print(f"| {machine(device)} | {args.B} | {N} | {T} | {loop_ms:.1f} | {fused_ms:.1f} | "
                      f"{loop_ms / fused_ms:.1f}x | {rate:.2f}{note} |", flush=True)


if __name__ == "__main__":
    main()
