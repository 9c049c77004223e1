"""Event-driven LinearLIF against the dense path and SpikingJelly, over the spike rate: the
700-256-20 network of bench/bench_memory.py and a 2312-512-10 (N-MNIST size) network,
inference and one training step, at input and hidden spike rates of 1-20 %.

    python bench/bench_events.py [--T 200] [--rates 0.01 0.03 0.1 0.2] [--rounds 5]
        [--json FILE] [--plot docs/event_linear.png] [--report FILE]
    python bench/bench_events.py --replot FILE.json --plot docs/event_linear.png
    python bench/bench_events.py --conv [--T 20]     # EventConv2d against nn.Conv2d

Ways (each a two-layer network, the neuron of bench_memory.py: beta = alpha = 0.5, hard
reset, sigmoid surrogate):
  dense:        nn.Linear + snnfast.lif per layer (the fused op; what the issue compares to)
  linearlif:    snnfast.nn.LinearLIF(events=False) (today's LinearLIF: input saved as bits)
  events:       snnfast.nn.LinearLIF(events=True) (both layers on the events)
  auto:         snnfast.nn.LinearLIF() (events below EVENT_CROSSOVER in training,
                EVENT_CROSSOVER_INFERENCE in inference, else dense)
  spikingjelly: layer.Linear + neuron.LIFNode, multi-step, torch backend
The input is Bernoulli spikes at the rate; the first layer's weights are scaled (calibrated
once per rate on a short sequence) so that the hidden layer fires at about the same rate.
A training step is forward, a rate-readout cross-entropy, backward and an SGD update; the
input is data (no gradient). All the ways run interleaved in one process (snnfast.benchmark
.interleaved_times): best and median of the rounds. Also reported: the conversion of the
input and of the hidden spikes to events (snnfast.event_linear.to_events) beside the dense
matrix product it replaces, and the hidden LIF op with and without emitting its events
(what the event path does instead of converting the hidden spikes).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import snnfast  # noqa: E402
from snnfast.utils import benchmark  # noqa: E402
from snnfast.ops.event_linear import to_events  # noqa: E402
from snnfast.nn.linear import EVENT_CROSSOVER, EVENT_CROSSOVER_INFERENCE  # noqa: E402

NETWORKS = {"700-256-20": (700, 256, 20), "2312-512-10": (2312, 512, 10)}
B = 32
NEURON = dict(beta=0.5, alpha=0.5, surrogate="sigmoid")
WAYS = ("dense", "linearlif", "events", "auto", "spikingjelly")
# The rate below which "auto" takes the events, by mode (snnfast/nn/linear.py).
AUTO_CROSSOVER = {"inference": ("EVENT_CROSSOVER_INFERENCE", EVENT_CROSSOVER_INFERENCE),
                  "training": ("EVENT_CROSSOVER", EVENT_CROSSOVER)}


def linear_layers(sizes, gain, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
    with torch.no_grad():
        layers[0].weight.mul_(gain)
        layers[1].weight.mul_(6.0)
    return layers


class Dense(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = snnfast.lif(layer(x), **NEURON)
        return x


class Fused(nn.Module):
    def __init__(self, layers, events):
        super().__init__()
        self.layers = nn.ModuleList()
        for linear in layers:
            fused = snnfast.nn.LinearLIF(linear.in_features, linear.out_features, events=events, **NEURON)
            with torch.no_grad():
                fused.weight.copy_(linear.weight)
                fused.bias.copy_(linear.bias)
            self.layers.append(fused)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Jelly(nn.Module):
    def __init__(self, layers):
        super().__init__()
        from spikingjelly.activation_based import layer, neuron, surrogate

        modules = []
        for linear in layers:
            jl = layer.Linear(linear.in_features, linear.out_features, step_mode="m")
            with torch.no_grad():
                jl.weight.copy_(linear.weight)
                jl.bias.copy_(linear.bias)
            modules += [jl, neuron.LIFNode(tau=2.0, step_mode="m", surrogate_function=surrogate.Sigmoid(alpha=4.0))]
        self.net = nn.Sequential(*modules)

    def forward(self, x):
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        return self.net(x)


def build(way, layers):
    if way == "dense":
        return Dense(layers)
    if way == "spikingjelly":
        return Jelly(layers)
    return Fused(layers, {"linearlif": False, "events": True, "auto": "auto"}[way])


def calibrate_gain(sizes, rate, T=50, seed=0):
    """The first layer's weight gain at which the hidden layer fires at about `rate`."""
    x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(seed)) < rate).float()
    low, high = 0.1, 200.0
    with torch.no_grad():
        for _ in range(18):
            gain = (low * high) ** 0.5
            layer = linear_layers(sizes, gain)[0]
            hidden = snnfast.lif(layer(x), **NEURON).mean().item()
            low, high = (gain, high) if hidden < rate else (low, gain)
    return (low * high) ** 0.5


def measure(name, sizes, T, rate, rounds, device):
    gain = calibrate_gain(sizes, rate)
    layers = linear_layers(sizes, gain)
    x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(1)) < rate).float()
    labels = torch.randint(sizes[-1], (B,), generator=torch.Generator().manual_seed(2))
    models = {way: build(way, layers) for way in WAYS}
    optimizers = {way: torch.optim.SGD(m.parameters(), lr=1e-3) for way, m in models.items()}
    with torch.no_grad():
        hidden = snnfast.lif(layers[0](x), **NEURON)
        hidden_rate = hidden.mean().item()

    def infer(way):
        def run():
            with torch.no_grad():
                return models[way](x)
        return run

    def train(way):
        def run():
            optimizers[way].zero_grad(set_to_none=True)
            loss = F.cross_entropy(models[way](x).mean(0), labels)
            loss.backward()
            optimizers[way].step()
        return run

    # The conversions and the dense products they stand beside; the hidden LIF op without
    # and with its own events (what the event path runs instead of converting the hidden spikes).
    w1, w2 = layers[0].weight.detach(), layers[1].weight.detach()
    with torch.no_grad():
        current = layers[0](x)
    lif_args = (torch.tensor(NEURON["beta"]), torch.tensor(NEURON["alpha"]), torch.tensor(1.0), None,
                "hard", 0.0, False, NEURON["surrogate"], snnfast.surrogate.get(NEURON["surrogate"]).param)
    parts = {
        "convert input": lambda: to_events(x),
        "dense x W1^T": lambda: F.linear(x, w1),
        "convert hidden": lambda: to_events(hidden),
        "dense h W2^T": lambda: F.linear(hidden, w2),
        "hidden LIF": lambda: torch.ops.snnfast.lif_inference(current, *lif_args),
        "hidden LIF + events": lambda: torch.ops.snnfast.lif_events(current, *lif_args, False),
    }
    calls = [infer(w) for w in WAYS] + [train(w) for w in WAYS] + list(parts.values())
    times = benchmark.interleaved_times(calls, device, rounds, min_sample_s=0.0)
    stat = [(min(t) * 1e3, statistics.median(t) * 1e3) for t in times]
    n = len(WAYS)
    return dict(
        network=name, T=T, rate=rate, hidden_rate=hidden_rate, gain=gain,
        inference={w: stat[i] for i, w in enumerate(WAYS)},
        training={w: stat[n + i] for i, w in enumerate(WAYS)},
        parts={p: stat[2 * n + i] for i, p in enumerate(parts)},
    )


def check_equal(sizes, T, rate):
    """Outputs and gradients of the event network against the dense one, float64."""
    layers = [layer.double() for layer in linear_layers(sizes, calibrate_gain(sizes, rate))]
    x = (torch.rand(T, B, sizes[0], generator=torch.Generator().manual_seed(3)) < rate).double()
    results = {}
    for way in ("dense", "events"):
        model = build(way, layers).double()
        out = model(x)
        grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        grads = torch.autograd.grad(out, list(model.parameters()), grad_out)
        results[way] = [out.detach()] + list(grads)
    scale = max(float(t.abs().max()) for t in results["dense"])
    return max(float((a - b).abs().max()) for a, b in zip(results["dense"], results["events"])), scale


# N-MNIST-sized convolutions of a spiking CNN: (C_in, H, W, C_out, k).
CONVS = {"conv1 2x34x34 -> 12, 5x5": (2, 34, 34, 12, 5), "conv2 12x15x15 -> 32, 5x5": (12, 15, 15, 32, 5)}


def measure_conv(T, rate, rounds, device):
    """Dense F.conv2d against the event-driven snnfast.nn.EventConv2d, side by side on the same
    spikes [T x B, C_in, H, W] and weights: the forward (no grad; the event layer's conversion
    of the input included) and a training step (forward and the weight's and bias's backward,
    the input being data). Also the parts: the conversion of the input alone, and the cost
    an event conv was estimated at before it was built, event_linear over the im2col view of
    the spikes (each output position gathering the weight columns of the active inputs of its
    receptive field, C_out features each), with those im2col events built beforehand."""
    out = []
    for name, (c_in, h, w, c_out, k) in CONVS.items():
        x = (torch.rand(T * B, c_in, h, w, generator=torch.Generator().manual_seed(5)) < rate).float()
        torch.manual_seed(6)
        dense = nn.Conv2d(c_in, c_out, k)
        event = snnfast.nn.EventConv2d(c_in, c_out, k, events=True)
        event.load_state_dict(dense.state_dict())
        grad_out = torch.randn(dense(x).shape, generator=torch.Generator().manual_seed(7))
        weight = dense.weight.detach()
        cols = F.unfold(x, k).transpose(1, 2).reshape(-1, c_in * k * k)  # [positions, C_in k k]
        events = to_events(cols)
        weight_t = weight.flatten(1).t().contiguous()

        def forward(layer):
            def run():
                with torch.no_grad():
                    return layer(x)
            return run

        def step(layer):
            def run():
                layer.zero_grad(set_to_none=True)
                layer(x).backward(grad_out)
            return run

        calls = [forward(dense), forward(event), step(dense), step(event), lambda: to_events(x),
                 lambda: torch.ops.snnfast.event_linear(events.offsets, events.indices, weight_t, None)]
        times = benchmark.interleaved_times(calls, device, rounds, min_sample_s=0.0)
        out.append((name, rate, *((min(t) * 1e3, statistics.median(t) * 1e3) for t in times)))
    return out


CONV_COLUMNS = ("nn.Conv2d forward", "EventConv2d forward", "nn.Conv2d training step", "EventConv2d training step",
                "convert input", "im2col event_linear (estimate)")


def crossover(rows, network, mode, way="events"):
    """The first rate at which `way` is no faster than dense (median), or None."""
    for row in sorted((r for r in rows if r["network"] == network), key=lambda r: r["rate"]):
        if row[mode][way][1] >= row[mode]["dense"][1]:
            return row["rate"]
    return None


def table(rows):
    lines = []
    for name in NETWORKS:
        sel = [r for r in rows if r["network"] == name]
        if not sel:
            continue
        lines.append(f"\n### {name}, T = {sel[0]['T']}, B = {B} (ms, best / median)\n")
        lines.append("| mode | input rate | hidden rate | " + " | ".join(WAYS) + " | dense / events |")
        lines.append("|---|---:|---:|" + "---:|" * len(WAYS) + "---:|")
        for mode in ("inference", "training"):
            for r in sel:
                cells = " | ".join(f"{r[mode][w][0]:.1f} / {r[mode][w][1]:.1f}" for w in WAYS)
                speedup = r[mode]["dense"][1] / r[mode]["events"][1]
                lines.append(f"| {mode} | {r['rate']:.0%} | {r['hidden_rate']:.1%} | {cells} | {speedup:.2f}x |")
        lines.append("\nConversion to events beside the dense product it replaces (ms, median):\n")
        lines.append("| input rate | " + " | ".join(sel[0]["parts"]) + " |")
        lines.append("|---:|" + "---:|" * len(sel[0]["parts"]))
        for r in sel:
            lines.append(f"| {r['rate']:.0%} | " + " | ".join(f"{v[1]:.1f}" for v in r["parts"].values()) + " |")
        for mode in ("inference", "training"):
            c = crossover(rows, name, mode)
            lines.append(f"\n{mode}: events no faster than dense from input rate "
                         f"{'above the rates measured' if c is None else f'{c:.0%}'}")
    return "\n".join(lines)


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for i, name in enumerate(NETWORKS):
        sel = sorted((r for r in rows if r["network"] == name), key=lambda r: r["rate"])
        for j, mode in enumerate(("inference", "training")):
            ax = axes[j][i]
            for way in WAYS:
                ax.plot([100 * r["rate"] for r in sel], [r[mode][way][1] for r in sel], marker="o", label=way)
            label, rate = AUTO_CROSSOVER[mode]
            ax.axvline(100 * rate, color="grey", linestyle=":", label=label)
            ax.set_yscale("log")
            ax.set_xlabel("input spike rate (%); hidden calibrated to about the same")
            ax.set_ylabel("ms (median)")
            ax.set_title(f"{name}, T = {sel[0]['T'] if sel else '?'}, B = {B}: {mode}")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--T", type=int, default=200)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.03, 0.05, 0.1, 0.2],
                        help="input spike rates, fractions in (0, 1]")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (on a machine shared by "
                        "more processes than cores, 1 thread waits at no OpenMP barrier)")
    parser.add_argument("--json")
    parser.add_argument("--plot")
    parser.add_argument("--report")
    parser.add_argument("--replot")
    parser.add_argument("--conv", action="store_true",
                        help="measure snnfast.nn.EventConv2d against nn.Conv2d only")
    args = parser.parse_args(argv)
    outside = [rate for rate in args.rates if not 0 < rate <= 1]
    if outside:
        parser.error(f"--rates takes spike rates as fractions in (0, 1] (0.03 for 3 %), got {outside}")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.conv:
        print(f"{datetime.date.today()}, {benchmark.machine()}; uptime: "
              f"{subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}; T = {args.T}, B = {B}")
        print("ms, best / median:\n")
        print("| convolution | rate | " + " | ".join(CONV_COLUMNS) + " | forward, step: dense / events |")
        print("|---|---:|" + "---:|" * (len(CONV_COLUMNS) + 1))
        for rate in args.rates:
            for name, r, *stats in measure_conv(args.T, rate, args.rounds, torch.device("cpu")):
                cells = " | ".join(f"{best:.1f} / {median:.1f}" for best, median in stats)
                ratios = f"{stats[0][1] / stats[1][1]:.2f}x, {stats[2][1] / stats[3][1]:.2f}x"
                print(f"| {name} | {r:.0%} | {cells} | {ratios} |")
        return
    if args.replot:
        with open(args.replot) as f:
            rows = json.load(f)["rows"]
    else:
        from tqdm import tqdm

        device = torch.device("cpu")
        uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        rows = []
        jobs = [(n, r) for n in args.networks for r in args.rates]
        for name, rate in tqdm(jobs, desc="network x rate"):
            rows.append(measure(name, NETWORKS[name], args.T, rate, args.rounds, device))
            if args.json:  # nothing lost on interruption
                with open(args.json, "w") as f:
                    json.dump(dict(rows=rows, machine=benchmark.machine(), uptime=uptime), f, indent=1)
        uptime_after = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        diff, scale = check_equal(NETWORKS["700-256-20"], 50, 0.03)
        header = (f"{datetime.date.today()}, {benchmark.machine()}; uptime before: {uptime}; "
                  f"after: {uptime_after}\n"
                  f"command: python bench/bench_events.py {' '.join(argv or sys.argv[1:])}\n"
                  f"float64 events vs dense, 700-256-20 at 3 %, T = 50: outputs and gradients differ by "
                  f"at most {diff:.1e} (largest value {scale:.1e})")
        benchmark.write_report(header + "\n" + table(rows), args.report)
    if args.replot:
        print(table(rows))
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
