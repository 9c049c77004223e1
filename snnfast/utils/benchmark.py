"""Times the fused LIF op against the reference loop and the peers, beside the memory floor;
and the toolkit every benchmark of bench/ uses: one timer (interleaved_times, time_call), one
machine description (machine), one neuron (NEURON, named in every table's header by
describe_neuron), the copy rate and the report writer.

`snnfast bench` and bench/bench_lif.py both run this. Every
contender runs the same neuron on the same input in one process, so the ratios are fair even
on a busy machine; the floor is the bytes the op must move over a copy rate measured in the
same run.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from .. import ops
from ..ops import reference
from .. import surrogate as surrogates

# The neuron of every LIF benchmark (bench_lif, bench_cuda, bench_memory, bench_allocator), so
# that their tables compare: SpikingJelly's default LIFNode(tau=2, decay_input=True,
# v_threshold=1, v_reset=0) with its default sigmoid surrogate (SpikingJelly's alpha=4, our
# sharpness); in docs/neuron.md's terms beta = 1 - 1/tau, alpha = 1/tau, hard reset to 0.
TAU = 2.0
BETA = 1.0 - 1.0 / TAU
ALPHA = 1.0 / TAU
SHARPNESS = 4.0
# snnfast.lif(x, **NEURON) runs it.
NEURON = dict(beta=BETA, alpha=ALPHA, threshold=1.0, reset="hard", v_reset=0.0,
              surrogate=surrogates.Sigmoid(SHARPNESS))


def describe_neuron(beta, alpha=1.0, threshold=1.0, reset="hard", v_reset=0.0, surrogate="rectangle",
                    detach_reset=False, recurrent=False) -> str:
    """The neuron of a table, for its header: every setting snnfast.lif takes, in one wording
    for every benchmark (the keywords are snnfast.lif's, so describe_neuron(**NEURON) works)."""
    s = surrogates.get(surrogate)
    resets = {"hard": f"hard reset to {v_reset:g}", "soft": "soft reset", "none": "no reset"}
    parameter = dataclasses.fields(s)[0].name  # width or sharpness
    return (f"{'recurrent ' if recurrent else ''}LIF, beta = {beta:g}, alpha = {alpha:g}, threshold {threshold:g}, "
            f"{resets[reset]}{', detach_reset' if detach_reset else ''}, {s.name} surrogate ({parameter} {s.param:g})")

# Bytes per neuron-step that a fused fwd + bwd must move at the least, in units of the
# element size: forward reads x and writes spikes and h; backward reads the incoming
# gradient and h and writes grad_x.
FORWARD_PASSES = 3
BACKWARD_PASSES = 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 1) -> float:
    """The best wall time of fn() over `repeats` runs after `warmup` untimed ones, in seconds:
    the least disturbed by whatever else the machine does, for every contender alike."""
    (times,) = interleaved_times([fn], device, repeats, warmup=warmup, min_sample_s=0.0)
    return min(times)


def interleaved_times(calls: list[Callable[[], object]], device: torch.device, rounds: int,
                      warmup: int = 2, min_sample_s: float = 0.01, settle: int = 0) -> list[list[float]]:
    """Seconds per call of each call in each of `rounds` rounds: the one timer of every
    benchmark. Each round runs every call in turn, so that a burst of load on the machine hits
    all of them rather than one; a sample repeats a short call until it lasts about
    min_sample_s, above the timer's and the scheduler's jitter (0: one call per sample). On a
    GPU the device is synchronised around each sample. settle: untimed calls before each
    sample, where a call runs in the state the one before left (an allocator's cache, say)."""
    def run(fn, repeats):
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            fn()
        _sync(device)
        return (time.perf_counter() - start) / repeats

    repeats = []
    for fn in calls:
        for _ in range(warmup - 1):
            fn()
        repeats.append(max(1, math.ceil(min_sample_s / max(run(fn, 1), 1e-9))))
    times = [[] for _ in calls]
    for _ in range(rounds):
        for fn, n, seen in zip(calls, repeats, times):
            for _ in range(settle):
                fn()
            seen.append(run(fn, n))
    return times


def paired_ratio(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(median, lower quartile, upper quartile) of a[r] / b[r] over the rounds r of
    interleaved_times: the two calls of a round ran next to each other, so a burst of load
    that slows both cancels in their ratio, where the ratio of two medians keeps it. The
    estimate to quote when the difference sought (a 1 % overhead) is smaller than the
    round-to-round swing of either time."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired_ratio needs two equal, non-empty lists of times, got {len(a)} and {len(b)}")
    ratios = sorted(x / y for x, y in zip(a, b))
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    low, _, high = statistics.quantiles(ratios, n=4, method="inclusive")
    return statistics.median(ratios), low, high


def keep_freed_memory() -> bool:
    """Tells glibc's malloc to keep freed memory for reuse (no mmap, no trimming), as a
    caching allocator (jemalloc, tcmalloc) would. Otherwise every tensor over glibc's sliding
    mmap threshold is fresh memory whose first touch page-faults: the fused op's few large
    outputs pay it on every call while the per-step loops' small tensors do not, and the
    same call's time swings by 3x or more from run to run. Every contender runs under the
    same setting. False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


def choose_allocator(default_malloc: bool) -> str:
    """Keeps freed memory (keep_freed_memory) unless default_malloc; says which, for the
    report's header."""
    if not default_malloc and keep_freed_memory():
        return "glibc malloc told to keep freed memory (M_MMAP_MAX = 0, M_TRIM_THRESHOLD = 2 GiB)"
    return "glibc malloc, defaults"


def write_report(text: str, out: Optional[str]) -> None:
    """Prints a report, and writes it to `out` too where one is given."""
    print(text)
    if out:
        with open(out, "w") as f:
            f.write(text + "\n")


def copy_rate(device: torch.device, nbytes: int = 1 << 28, repeats: int = 5) -> float:
    """Bytes per second that a plain tensor copy moves (read + write)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    seconds = time_call(lambda: dst.copy_(src), device, repeats)
    return 2 * nbytes / seconds


@dataclass
class Contender:
    name: str
    # Takes x [T, B, N] (requires grad) and returns the spikes.
    run: Callable[[torch.Tensor], torch.Tensor]


def _snnfast(x):
    return ops.lif(x, **NEURON)


def _reference(x):
    return reference.lif(x, **NEURON)


def _spikingjelly() -> Optional[Contender]:
    try:
        from spikingjelly.activation_based import neuron
    except Exception:  # not installed, or an install whose optional deps are missing
        return None
    node = neuron.LIFNode(tau=TAU, decay_input=True, v_reset=0.0, step_mode="m")

    def run(x):
        node.reset()
        return node(x)

    return Contender("spikingjelly 2.0 LIFNode", run)


def _snntorch() -> Optional[Contender]:
    try:
        import snntorch
    except Exception:
        return None
    # snnTorch's Leaky has no input scale and resets by subtraction: the closest neuron it
    # offers; it is timed for its cost, not compared for its values.
    leaky = snntorch.Leaky(beta=BETA, threshold=1.0, reset_mechanism="zero")

    def run(x):
        mem = leaky.init_leaky()
        spikes = []
        for x_t in x:
            spk, mem = leaky(ALPHA * x_t, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return Contender("snntorch Leaky", run)


def contenders(include_reference: bool = True) -> list[Contender]:
    found = [Contender("snnfast.lif (fused)", _snnfast)]
    if include_reference:
        found.append(Contender("reference loop", _reference))
    found += [c for c in (_spikingjelly(), _snntorch()) if c is not None]
    return found


@dataclass
class Row:
    T: int
    B: int
    N: int
    contender: str
    forward_s: float
    forward_backward_s: float
    floor_s: float


def measure(T: int, B: int, N: int, device: torch.device, rate: float, repeats: int,
            include_reference: bool = True, dtype: torch.dtype = torch.float32) -> list[Row]:
    generator = torch.Generator(device="cpu").manual_seed(0)
    x = (torch.randn(T, B, N, generator=generator) * 1.5 + 0.8).to(device=device, dtype=dtype)
    x.requires_grad_(True)
    grad = torch.randn(T, B, N, generator=generator).to(device=device, dtype=dtype)
    element = x.element_size()
    floor = (FORWARD_PASSES + BACKWARD_PASSES) * element * x.numel() / rate
    rows = []
    for c in contenders(include_reference):
        def forward():
            with torch.no_grad():
                return c.run(x)

        def forward_backward():
            out = c.run(x)
            out.backward(grad)
            x.grad = None

        rows.append(Row(T, B, N, c.name, time_call(forward, device, repeats),
                        time_call(forward_backward, device, repeats), floor))
    return rows


def table(rows: list[Row]) -> str:
    lines = [
        "| T | B | N | contender | fwd ms | fwd+bwd ms | fwd+bwd vs snnfast | fwd+bwd vs memory floor |",
        "|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    fused = {(r.T, r.B, r.N): r for r in rows if r.contender.startswith("snnfast")}
    for r in rows:
        base = fused[(r.T, r.B, r.N)]
        lines.append(
            f"| {r.T} | {r.B} | {r.N} | {r.contender} | {r.forward_s * 1e3:.2f} | "
            f"{r.forward_backward_s * 1e3:.2f} | {r.forward_backward_s / base.forward_backward_s:.1f}x | "
            f"{r.forward_backward_s / r.floor_s:.2f}x |"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def machine(device="cpu") -> str:
    """What ran a benchmark, in one line for every report: the GPU (name, memory, CUDA
    version) or the CPU (model, threads), then torch and Python."""
    device = torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        what = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    else:
        what = f"{cpu_model()}, {torch.get_num_threads()} threads"
    return f"{what}, torch {torch.__version__}, {platform.python_implementation()} {platform.python_version()}"


def load_average() -> str:
    """The 1-minute load average now, for a header ("-" where the system has none): figures
    from a shared machine say how busy it was."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "-"


def report(shapes, device: torch.device, repeats: int, reference_max_T: int = 100,
           progress: bool = True, allocator: str = "glibc malloc, defaults") -> str:
    """The table for `shapes`; the reference loop (an oracle, not a peer) only up to
    reference_max_T steps, where it takes minutes."""
    rate = copy_rate(device)
    rows = []
    for i, (T, B, N) in enumerate(shapes):
        if progress:
            print(f"[{i + 1}/{len(shapes)}] T={T} B={B} N={N} ...", flush=True)
        rows += measure(T, B, N, device, rate, repeats, include_reference=T <= reference_max_T)
    date = datetime.date.today().isoformat()
    return (
        f"Machine: {machine(device)}; device {device}; {date}; load average {load_average()}; "
        f"measured copy rate {rate / 1e9:.1f} GB/s (read + write).\n"
        f"Neuron: {describe_neuron(**NEURON)}; float32; times are the best of {repeats} runs.\n"
        f"The memory floor is {FORWARD_PASSES + BACKWARD_PASSES} x 4 bytes per neuron-step over the copy rate.\n"
        f"CPU memory: {allocator}.\n\n"
        + table(rows)
    )


QUICK_SHAPES = [(8, 64, 1024), (100, 64, 1024)]
FULL_SHAPES = [(8, 64, 1024), (100, 64, 1024), (1000, 64, 1024)]


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["imp"]:  # `snnfast bench imp`: the IMP overhead benchmark
        from .benchmark_imp import main as imp_main
        return imp_main(argv[1:])
    parser = argparse.ArgumentParser(prog="snnfast bench", description=__doc__,
                                     epilog="`snnfast bench imp --help`: the IMP overhead benchmark.")
    parser.add_argument("--full", action="store_true", help="add T = 1000 (slow for the reference loop)")
    parser.add_argument("--device", default="cpu", help="the device to time on: cpu (default) or cuda")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each contender; the best counts (default 5)")
    parser.add_argument("--reference-max-T", type=int, default=100,
                        help="time the reference loop only up to this T")
    parser.add_argument("--out", help="also write the table to this markdown file")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is; by default it is told to keep freed memory "
                             "(as a caching allocator does), so that no contender pays fresh page faults")
    args = parser.parse_args(argv)
    allocator = choose_allocator(args.default_malloc)
    text = report(FULL_SHAPES if args.full else QUICK_SHAPES, torch.device(args.device), args.repeats,
                  args.reference_max_T, allocator=allocator)
    write_report(text, args.out)


if __name__ == "__main__":
    main()
