"""Memory of one training step of a 700-256-20 spiking MLP over long sequences: bytes saved
for the backward pass, peak memory and time per step, for each of snnfast's ways to save
memory and for the same network built from SpikingJelly 2.0 modules.

    python bench/bench_memory.py [--T 100 1000 10000] [--plot docs/memory_vs_T.png] [--json FILE]
    python bench/bench_memory.py --check [--T 1000]     # gradients of the ways against the plain path
    python bench/bench_memory.py --replot A.json B.json --plot docs/memory_vs_T.png

The network: Linear(700, 256) -> LIF -> Linear(256, 20) -> LIF, the output spikes averaged
over time as logits of a cross-entropy loss (rate readout); B = 32; the input is Bernoulli
spikes (p = 0.1), as an event dataset such as SHD gives. The neuron is every LIF benchmark's
(snnfast.utils.benchmark.NEURON): SpikingJelly's default LIFNode (tau = 2, decay_input,
v_reset = 0, sigmoid surrogate), in snnfast's terms beta = alpha = 0.5, hard reset, sharpness
4. A step is forward, loss, backward and an SGD update.

Bytes saved: snnfast.utils.memory.SavedTensorBytes around the network's forward pass (each storage
once, parameters included). Peak: each configuration runs in a fresh subprocess, which does
one warm-up step at T = 20, resets the peak, and reports the peak RSS of the measured step
above the RSS before it (model, optimizer and the input already allocated); glibc is told to
return freed memory at once (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) so that RSS
follows what is live. On a GPU the CUDA allocator's peak is reported instead. Time: all the
ways run side by side in one process per T, interleaved (snnfast.utils.benchmark's timer),
median of the rounds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import snnfast  # noqa: E402
from snnfast.utils import benchmark, memory  # noqa: E402

IN, HIDDEN, OUT = 700, 256, 20
B = 32
INPUT_RATE = 0.1
NEURON = benchmark.NEURON
# The default nn.Linear initialisation scaled up so that the neurons fire (hidden about 7%,
# output about 2% of the steps at T = 1000): the bf16 error and the checks need activity.
GAINS = (7.0, 6.0)

WAYS = {
    "spikingjelly": "SpikingJelly 2.0: layer.Linear + neuron.LIFNode (multi-step)",
    "snnfast": "nn.Linear + snnfast.lif (plain)",
    "bf16": "nn.Linear + snnfast.lif_saved_bf16 (trace in bfloat16)",
    "checkpoint": "nn.Linear + snnfast.lif_checkpointed(segment=K)",
    "linearlif": "snnfast.nn.LinearLIF (input spikes as bits, trace kept)",
    "linearlif_ckpt": "snnfast.nn.LinearLIF(segment=K) (bits + checkpoints)",
    "truncated": "snnfast, truncated BPTT in chunks of K (truncated_backward)",
}
EXACT = {"spikingjelly": "reference", "snnfast": "reference", "bf16": "approx.", "checkpoint": "exact",
         "linearlif": "exact", "linearlif_ckpt": "exact", "truncated": "truncated"}


def segment_for(T: int) -> int:
    """K ~ sqrt(T): T / K saved states + K recomputed steps per neuron is smallest there."""
    return max(1, round(math.sqrt(T)))


def initial_weights(seed: int = 0):
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, OUT)
    with torch.no_grad():
        fc1.weight.mul_(GAINS[0])
        fc2.weight.mul_(GAINS[1])
    return [p.detach().clone() for p in (fc1.weight, fc1.bias, fc2.weight, fc2.bias)]


def make_input(T: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, IN, generator=generator) < INPUT_RATE).float()
    labels = torch.randint(OUT, (B,), generator=generator)
    return x, labels


class SnnfastMLP(nn.Module):
    """The MLP with snnfast neurons; `way` picks how the neurons save for backward."""

    def __init__(self, way: str, segment: int, weights):
        super().__init__()
        self.way = way
        fused = way in ("linearlif", "linearlif_ckpt")
        if fused:
            seg = segment if way == "linearlif_ckpt" else None
            self.layer1 = snnfast.nn.LinearLIF(IN, HIDDEN, segment=seg, **NEURON)
            self.layer2 = snnfast.nn.LinearLIF(HIDDEN, OUT, segment=seg, **NEURON)
        else:
            self.layer1, self.layer2 = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, OUT)
        with torch.no_grad():
            for p, w in zip((self.layer1.weight, self.layer1.bias, self.layer2.weight, self.layer2.bias), weights):
                p.copy_(w)
        self.fused = fused
        self.segment = segment

    def neuron(self, current, u0):
        kw = dict(NEURON, u0=u0, return_state=True)
        beta = kw.pop("beta")
        if self.way in ("bf16", "bf16_plain_rounding"):
            return snnfast.lif_saved_bf16(current, beta, keep_branches=self.way == "bf16", **kw)
        if self.way == "checkpoint":
            return snnfast.lif_checkpointed(current, beta, segment=self.segment, **kw)
        return snnfast.lif(current, beta, **kw)

    def forward(self, x, state=(None, None)):
        if self.fused:
            hidden, u1 = self.layer1(x, u0=state[0], return_state=True)
            out, u2 = self.layer2(hidden, u0=state[1], return_state=True)
        else:
            hidden, u1 = self.neuron(self.layer1(x), state[0])
            out, u2 = self.neuron(self.layer2(hidden), state[1])
        return out, (u1, u2)


class SpikingJellyMLP(nn.Module):
    def __init__(self, weights):
        super().__init__()
        from spikingjelly.activation_based import layer, neuron, surrogate

        def lif():
            return neuron.LIFNode(tau=benchmark.TAU, step_mode="m",
                                  surrogate_function=surrogate.Sigmoid(alpha=benchmark.SHARPNESS))

        self.net = nn.Sequential(layer.Linear(IN, HIDDEN, step_mode="m"), lif(),
                                 layer.Linear(HIDDEN, OUT, step_mode="m"), lif())
        with torch.no_grad():
            for p, w in zip((self.net[0].weight, self.net[0].bias, self.net[2].weight, self.net[2].bias), weights):
                p.copy_(w)

    def forward(self, x):
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        return self.net(x)


def build(way: str, T: int):
    weights = initial_weights()
    if way == "spikingjelly":
        return SpikingJellyMLP(weights)
    return SnnfastMLP(way, segment_for(T), weights)


def train_step(way: str, model, optimizer, x, labels):
    """One training step; returns the bytes saved for backward, all and leaving out the input
    and the parameters (for truncated BPTT: the most that one chunk saves, since each chunk's
    are freed by its backward pass)."""
    optimizer.zero_grad(set_to_none=True)
    T = x.shape[0]
    kept_anyway = [x, *model.parameters()]
    if way == "truncated":
        most = [0, 0]

        def step(x_chunk, state):
            with memory.SavedTensorBytes() as saved:
                out = model(x_chunk, state)
            most[0] = max(most[0], saved.total)
            most[1] = max(most[1], saved.excluding(kept_anyway))
            return out

        def loss_fn(out, t0, t1):
            # The rate readout of each chunk, weighted by its share of the sequence.
            return F.cross_entropy(out.mean(0), labels) * ((t1 - t0) / T)

        snnfast.truncated_backward(step, x, (None, None), chunk=segment_for(T), loss_fn=loss_fn)
        optimizer.step()
        return tuple(most)
    with memory.SavedTensorBytes() as saved:
        out = model(x) if way == "spikingjelly" else model(x)[0]
    loss = F.cross_entropy(out.mean(0), labels)
    loss.backward()
    optimizer.step()
    return saved.total, saved.excluding(kept_anyway)


def measure_one(way: str, T: int, device: str) -> dict:
    """Runs in a fresh process: saved bytes and peak memory of one step."""
    model = build(way, T).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    warm_x, warm_labels = make_input(20)
    train_step(way, model, optimizer, warm_x.to(device), warm_labels.to(device))
    x, labels = make_input(T)
    x, labels = x.to(device), labels.to(device)
    memory.reset_peak(device)
    before = memory.current_bytes(device)
    start = time.perf_counter()
    saved, saved_not_data = train_step(way, model, optimizer, x, labels)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = memory.peak_bytes(device)
    return dict(way=way, T=T, saved=saved, saved_not_data=saved_not_data, peak=peak - before,
                peak_abs=peak, alone_s=seconds)


def measure_in_subprocess(way: str, T: int, device: str) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    cmd = [sys.executable, os.path.abspath(__file__), "--one", way, str(T), "--device", device,
           "--threads", str(torch.get_num_threads())]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{way} at T={T} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def time_side_by_side(ways, T: int, device: str, rounds: int) -> dict:
    """Median seconds per training step of each way, interleaved in one process."""
    x, labels = make_input(T)
    x, labels = x.to(device), labels.to(device)
    steps = []
    for way in ways:
        model = build(way, T).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        train_step(way, model, optimizer, x[:20], labels)  # warm-up at a short T
        steps.append(lambda way=way, model=model, optimizer=optimizer: train_step(way, model, optimizer, x, labels))
    # One step per sample; the untimed first call of interleaved_times warms each way at T.
    times = benchmark.interleaved_times(steps, torch.device(device), rounds, warmup=1, min_sample_s=0.0)
    return {way: statistics.median(t) for way, t in zip(ways, times)}


def check(T: int) -> None:
    """Gradients of every way against the plain snnfast path on the same weights and input."""
    x, labels = make_input(T)

    def grads(way):
        model = build(way, T)
        out = model(x) if way == "spikingjelly" else model(x)[0]
        F.cross_entropy(out.mean(0), labels).backward()
        return out.detach(), [p.grad for p in model.parameters()]

    ref_out, ref = grads("snnfast")
    names = ["W1", "b1", "W2", "b2"]
    print(f"T={T}, B={B}, float32; gradient differences against nn.Linear + snnfast.lif")
    for way in ["linearlif", "linearlif_ckpt", "checkpoint", "bf16", "bf16_plain_rounding", "spikingjelly"]:
        out, got = grads(way)
        same = torch.equal(out, ref_out)
        diffs = ", ".join(
            f"{n}: max|d|/max|g| {((g - r).abs().max() / r.abs().max()).item():.1e}"
            f" |d|/|g| {((g - r).norm() / r.norm()).item():.1e}"
            for n, g, r in zip(names, got, ref))
        print(f"  {way:15s} spikes equal: {same}; {diffs}")
    bf16_flips(x, initial_weights())


def bf16_flips(x, weights) -> None:
    """How often rounding the hidden layer's trace to bfloat16 moves a membrane across the
    threshold (a recomputed spike that differs) or across the rectangle surrogate's window."""
    with torch.no_grad():
        _, h = snnfast.lif(F.linear(x, weights[0], weights[1]), NEURON["beta"], alpha=NEURON["alpha"],
                           return_membrane=True)
    rounded = h.to(torch.bfloat16).float()
    spike_flips = ((rounded >= 1.0) != (h >= 1.0)).double().mean().item()
    window_flips = (((rounded - 1).abs() < 0.5) != ((h - 1).abs() < 0.5)).double().mean().item()
    for way, keep in (("keep_branches=False", False), ("keep_branches=True", True)):
        trace = snnfast.longseq.bptt.to_bfloat16_keeping_branches(h, torch.tensor(1.0), snnfast.surrogate.Rectangle()) \
            if keep else h.to(torch.bfloat16)
        back = trace.float()
        flips = ((back >= 1.0) != (h >= 1.0)).double().mean().item()
        print(f"  hidden trace in bf16, {way}: recomputed spikes that differ: {flips:.2e} of neuron-steps")
    print(f"  plain rounding moves {spike_flips:.2e} of hidden neuron-steps across the threshold and "
          f"{window_flips:.2e} across the rectangle window's edges")


def fmt_mb(n) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=list(WAYS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--plot", default=None, help="PNG of memory against T")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--replot", nargs="+", metavar="JSON", help="only draw --plot from these --json files")
    parser.add_argument("--quick", action="store_true", help="T = 50, one round: a smoke run")
    parser.add_argument("--one", nargs=2, metavar=("WAY", "T"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.T, args.rounds = [50], 1
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.device)))
        return
    if args.replot:
        plot([r for path in args.replot for r in json.load(open(path))], args.plot)
        return
    if args.check:
        for T in args.T:
            check(T)
        return

    print(f"# {datetime.date.today()} {benchmark.machine(args.device)}, device {args.device}, "
          f"load average at start {benchmark.load_average()}")
    print(f"# Neuron: {benchmark.describe_neuron(**NEURON)}")
    print(f"# python bench/bench_memory.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    results = []
    for T in args.T:
        rows = {way: measure_in_subprocess(way, T, args.device) for way in args.ways}
        rounds = args.rounds if T < 10000 else min(args.rounds, 2)
        for way, seconds in time_side_by_side(args.ways, T, args.device, rounds).items():
            rows[way]["step_s"] = seconds
        sj = rows.get("spikingjelly", {}).get("saved")
        print(f"\nT = {T}, B = {B}, K = {segment_for(T)}  (MB = 1e6 bytes)")
        print(f"| way | gradients | saved for backward, MB | vs SpikingJelly | bytes / neuron-step "
              f"| saved, not counting input and weights, MB | peak above start, MB | step, s |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for way in args.ways:
            r = rows[way]
            ratio = f"{r['saved'] / sj:.3f}" if sj else "-"
            per = r["saved"] / (T * B * (HIDDEN + OUT))
            print(f"| {WAYS[way]} | {EXACT[way]} | {fmt_mb(r['saved'])} | {ratio} | {per:.2f} "
                  f"| {fmt_mb(r['saved_not_data'])} | {fmt_mb(r['peak'])} | {r['step_s']:.3f} |")
            results.append(r)
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.plot:
        plot(results, args.plot)


def plot(results, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 6.2))
    ways = [w for w in WAYS if any(r["way"] == w for r in results)]
    markers = dict(zip(WAYS, "osD^vPX"))
    for way in ways:
        rows = sorted((r for r in results if r["way"] == way), key=lambda r: r["T"])
        Ts = [r["T"] for r in rows]
        style = dict(marker=markers[way], markersize=7, label=f"{WAYS[way]} [{EXACT[way]}]",
                     linestyle="--" if way == "spikingjelly" else "-", color="black" if way == "spikingjelly" else None)
        axes[0].plot(Ts, [r["saved"] / 1e6 for r in rows], **style)
        axes[1].plot(Ts, [r["saved_not_data"] / 1e6 for r in rows], **style)
        axes[2].plot(Ts, [r["peak"] / 1e6 for r in rows], **style)
    titles = ("bytes saved for backward", "saved, not counting the input data and weights",
              "peak RSS of a step above its start")
    for ax, title in zip(axes, titles):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("time steps T")
        ax.set_ylabel("MB")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(f"700-256-20 spiking MLP, B = {B}, one training step (forward, backward, SGD), CPU; "
                 f"K = round(sqrt(T))")
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
