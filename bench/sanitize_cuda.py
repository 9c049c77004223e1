"""A small workload for compute-sanitizer: snnfast.lif and snnfast.recurrent_lif forward and
backward on CUDA, every gradient asked for, on a few odd shapes and both recurrent paths, and
two LinearLIF layers on events and on bits (every event and bit-packing kernel).

    compute-sanitizer --tool memcheck --error-exitcode 1 python3 bench/sanitize_cuda.py
    python3 bench/sanitize_cuda.py --device cpu      # the same calls on the CPU kernels

bench/run_gpu.sh runs it under memcheck (out-of-bounds and misaligned accesses) and racecheck
(shared-memory races: the persistent recurrent kernels exchange rows through shared memory
between steps). The shapes are small, since both tools slow every kernel down many times;
the correctness of the results is the tests' business, this only checks they are finite.
"""
from __future__ import annotations

import argparse
import sys

import torch

import snnfast
from snnfast import _library, surrogate

# (dtype, T, B, F, reset, surrogate): tails of every vector width, a multi-dimensional F.
LIF_CASES = [
    (torch.float32, 5, 3, (37,), "hard", surrogate.Sigmoid(4.0)),
    (torch.float64, 4, 2, (3, 5), "soft", surrogate.ATan(2.0)),
    (torch.float16, 3, 2, (33,), "none", surrogate.Triangle(1.0)),
    (torch.bfloat16, 2, 1, (7,), "hard", surrogate.Rectangle(1.0)),
]
# (dtype, T, B, N): V of N = 33 fits a block's shared memory (the persistent kernel); float32
# V of N = 300 (360 KB) does not (the per-step cuBLAS path).
RECURRENT_CASES = [
    (torch.float32, 6, 3, 33),
    (torch.float64, 4, 2, 40),
    (torch.float32, 3, 2, 300),
]


def leaf(shape, device, scale=1.0, shift=0.0, dtype=torch.float32):
    return (shift + scale * torch.randn(shape, device=device, dtype=dtype)).requires_grad_()


def run_lif(device, dtype, T, B, F, reset, surrogate_fn):
    x = leaf((T, B, *F), device, 0.9, 0.5).detach().to(dtype).requires_grad_()
    beta = leaf((F[0],), device, 0.1, 0.8)
    alpha = leaf(F, device, 0.1, 1.0)
    threshold = leaf((), device, 0.0, 1.0)
    u0 = leaf(F, device, 0.3)  # the learnable IMP
    outputs = snnfast.lif(x, beta, alpha=alpha, threshold=threshold, u0=u0, reset=reset,
                          surrogate=surrogate_fn, return_state=True, return_membrane=True)
    return outputs, (x, beta, alpha, threshold, u0)

# (T, B, in_features, out_features, input spike rate, events): odd widths, a row without
# spikes, an input without any; events=False packs the input as bits.
LINEAR_CASES = [
    (5, 3, 37, 33, 0.2, True),
    (4, 2, 70, 5, 0.05, True),
    (3, 2, 9, 4, 0.0, True),
    (4, 3, 37, 17, 0.2, False),
]


def run_linear(device, T, B, n_in, n_out, rate, events):
    """Two LinearLIF layers: the second takes the events the first one's LIF op emits."""
    layers = torch.nn.Sequential(
        snnfast.nn.LinearLIF(n_in, n_out, beta=0.5, surrogate="sigmoid", events=events),
        snnfast.nn.LinearLIF(n_out, 3, beta=0.5, surrogate="sigmoid", events=events)).to(device)
    with torch.no_grad():
        layers[0].weight.mul_(4.0)  # so that the first layer fires
    spikes = (torch.rand((T, B, n_in), device=device) < rate).float()
    return (layers(spikes),), tuple(layers.parameters())


def run_recurrent(device, dtype, T, B, N):
    x = leaf((T, B, N), device, 0.9, 0.3).detach().to(dtype).requires_grad_()
    V = (torch.randn(N, N, device=device, dtype=dtype) / N**0.5).requires_grad_()
    beta = leaf((N,), device, 0.1, 0.8)
    alpha = leaf((), device, 0.0, 1.0)
    u0 = leaf((B, N), device, 0.3)
    outputs = snnfast.recurrent_lif(x, V, beta, alpha=alpha, u0=u0, reset="soft",
                                    surrogate=surrogate.Sigmoid(4.0), return_state=True,
                                    return_membrane=True)
    return outputs, (x, V, beta, alpha, u0)


def check(name, outputs, inputs):
    grads = torch.autograd.grad(outputs, inputs, [torch.randn_like(o) for o in outputs])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    bad = [i for i, t in enumerate(list(outputs) + list(grads)) if not torch.isfinite(t).all()]
    print(f"{name}: {'non-finite values in results ' + str(bad) if bad else 'ok'}", flush=True)
    return not bad


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    for op, devices in (("lif", _library.LIF_DEVICES), ("recurrent_lif", _library.RECURRENT_LIF_DEVICES),
                        ("event_linear", _library.EVENT_DEVICES)):
        if device.type not in devices:
            sys.exit(f"snnfast.{op} has no compiled {device.type} kernel (built for: "
                     f"{sorted(devices) or 'none'}): nothing to check")
    torch.manual_seed(0)
    ok = True
    for dtype, T, B, F, reset, surrogate_fn in LIF_CASES:
        name = f"lif {str(dtype).removeprefix('torch.')} [{T}, {B}, {', '.join(map(str, F))}] {reset}"
        ok &= check(name, *run_lif(device, dtype, T, B, F, reset, surrogate_fn))
    for dtype, T, B, N in RECURRENT_CASES:
        name = f"recurrent_lif {str(dtype).removeprefix('torch.')} [{T}, {B}, {N}]"
        ok &= check(name, *run_recurrent(device, dtype, T, B, N))
    for T, B, n_in, n_out, rate, events in LINEAR_CASES:
        name = f"LinearLIF [{T}, {B}, {n_in}] -> {n_out} -> 3 at {rate:.0%} on {'events' if events else 'bits'}"
        ok &= check(name, *run_linear(device, T, B, n_in, n_out, rate, events))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
