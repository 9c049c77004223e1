"""GPU benchmark of the fused LIF op (snnfast.lif) on CUDA.

    python bench/bench_cuda.py --out docs/benchmarks_cuda.md
    python bench/bench_cuda.py --dry-run          # tiny shapes on the CPU: checks the script

Sections, each a markdown table:
  (a) time of fwd and fwd+bwd: snnfast.lif, SpikingJelly 2.0's LIFNode (multi-step, whatever
      CUDA implementation SpikingJelly selects; --sj-impl picks one) and the per-step PyTorch
      loop (snnfast.reference.lif), for T x B x N from 2^20 to 2^28 and T in {4, 16, 100, 1000};
  (b) effective bandwidth of the same runs against a measured device-to-device copy, counting
      only the bytes the op must move (fwd: read x, write spikes and h; bwd: read grad and h,
      write grad_x);
  (c) the IMP overhead: an IF neuron (beta = 1, soft reset) with and without a learnable
      per-neuron u0, input (T, N) as [T, 1, N];
  (d) the SHD regime: B x N = 6,400 neurons, T in {1000, 2000, 4000}.
Times are medians over repeats of back-to-back calls, measured with CUDA events after warm-up.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import torch

# The LIF neuron that every implementation runs: SpikingJelly's LIFNode(tau=2,
# decay_input=False, v_reset=0) is beta = 1 - 1/tau, alpha = 1, hard reset (neuron-spec.md),
# with SpikingJelly's default surrogate, Sigmoid(alpha=4).
TAU = 2.0
BETA = 1.0 - 1.0 / TAU
SURROGATE_K = 4.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the markdown report here (it is printed anyway)")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny shapes on the CPU, to check that the script runs")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--sections", default="abcd", help="which sections to run, e.g. 'ac'")
    parser.add_argument("--sj-impl", default="auto", choices=["auto", "cuda", "triton", "torch"],
                        help="SpikingJelly's CUDA implementation (SJ_LIF_CUDA_IMPLEMENTATION)")
    parser.add_argument("--loop-max-numel", type=int, default=2**28,
                        help="skip the per-step PyTorch loop above this many elements")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iters", type=int, default=10, help="calls per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


# --- timing ---------------------------------------------------------------------------------

def elapsed(fn, calls, device):
    """Seconds taken by `calls` back-to-back calls of fn: CUDA events on a GPU."""
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return time.perf_counter() - start
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1e3


def seconds_per_call(fn, device, args):
    """Median over repeats of the mean time of back-to-back calls, after warm-up. A repeat
    makes args.iters calls, fewer when one call is slow (the per-step loop at T = 1000), so
    that a repeat lasts about 50 ms but at least one call."""
    for _ in range(args.warmup):
        fn()
    calls = max(1, min(args.iters, int(0.05 / max(elapsed(fn, 1, device), 1e-9))))
    return statistics.median(elapsed(fn, calls, device) / calls for _ in range(args.repeats))


def release(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- the implementations --------------------------------------------------------------------

def snnfast_lif(x, **kwargs):
    import snnfast

    return snnfast.lif(x, BETA, surrogate=snnfast.surrogate.Sigmoid(SURROGATE_K), **kwargs)


def loop_lif(x):
    import snnfast

    return snnfast.reference.lif(x, BETA, surrogate=snnfast.surrogate.Sigmoid(SURROGATE_K))


class SpikingJelly:
    """SpikingJelly 2.0's multi-step LIFNode with its state reset before every call."""

    def __init__(self, device, impl):
        os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = impl  # read when spikingjelly's ops load
        from spikingjelly.activation_based import functional, neuron, surrogate

        self.functional = functional
        self.node = neuron.LIFNode(
            tau=TAU, decay_input=False, v_threshold=1.0, v_reset=0.0,
            surrogate_function=surrogate.Sigmoid(alpha=SURROGATE_K), step_mode="m",
        )
        self.device = device
        self._name = None

    def __call__(self, x):
        self.functional.reset_net(self.node)
        return self.node(x)

    @property
    def name(self):
        """The implementation SpikingJelly selected, once it has run on the device."""
        if self._name is None:
            try:
                info = self.functional.neuron_implementation("lif", self.device)
                self._name = str(info["implementation"])
            except Exception as error:  # older or newer SpikingJelly: report, don't fail
                self._name = f"unknown ({type(error).__name__})"
        return self._name

    @staticmethod
    def load(device, impl):
        """A SpikingJelly, or None where it is not installed."""
        try:
            return SpikingJelly(device, impl)
        except ImportError as error:
            print(f"SpikingJelly not available: {error}", file=sys.stderr)
            return None


def forward_only(fn, x):
    def call():
        with torch.no_grad():
            fn(x)
    return call


def forward_backward(fn, x, grad):
    def call():
        x.grad = None
        out = fn(x)
        out.backward(grad)
    return call


def snnfast_backward_only(x, grad):
    """The backward op alone, on the membrane of one forward pass: the glue and one kernel."""
    with torch.no_grad():
        _, membrane = snnfast_lif(x, return_membrane=True)
    beta, alpha, threshold = (torch.tensor(v, device=x.device) for v in (BETA, 1.0, 1.0))

    def call():
        torch.ops.snnfast.lif_backward(
            grad, None, None, membrane, None, beta, alpha, threshold, None, "hard", 0.0, False,
            "sigmoid", SURROGATE_K, [True, False, False, False, False],
        )
    return call


def copy_seconds(x, args):
    return seconds_per_call(lambda: torch.empty_like(x).copy_(x), x.device, args)


# --- sections -------------------------------------------------------------------------------

def shape_for(numel, T, B):
    """[T, B, N] with N chosen so that T * B * N is as close to numel as it can be."""
    return T, B, max(1, round(numel / (T * B)))


def bytes_moved(numel, dtype):
    """The minimum (fwd, bwd) bytes the op moves: fwd reads x, writes spikes and h; bwd reads
    grad and h, writes grad_x. h is in the arithmetic dtype, float32 here."""
    sx, sh = torch.empty((), dtype=dtype).element_size(), 4
    return numel * (2 * sx + sh), numel * (2 * sx + sh)


def copy_bandwidth(numel, dtype, seconds):
    """Bytes per second of the copy of numel elements: each is read and written once."""
    return 2 * numel * torch.empty((), dtype=dtype).element_size() / seconds


def section_sizes(args, device, dtype, sj):
    """Sections (a) and (b): one pass over the shapes, two tables."""
    if args.dry_run:
        numels, Ts, B = [2**10, 2**12], [4, 16], 4
    else:
        numels, Ts, B = [2**20, 2**22, 2**24, 2**26, 2**28], [4, 16, 100, 1000], 16
    times, bandwidth = [], []
    for numel in numels:
        for T in Ts:
            shape = shape_for(numel, T, B)
            x = (0.4 + 0.8 * torch.randn(shape, device=device)).to(dtype).requires_grad_()
            grad = torch.randn(shape, device=device).to(dtype)
            ours_fwd = seconds_per_call(forward_only(snnfast_lif, x), device, args)
            ours_both = seconds_per_call(forward_backward(snnfast_lif, x, grad), device, args)
            ours_bwd = seconds_per_call(snnfast_backward_only(x.detach(), grad), device, args)
            copy = copy_seconds(x.detach(), args)
            sj_fwd = sj_both = loop_fwd = loop_both = None
            if sj is not None:
                sj_fwd = seconds_per_call(forward_only(sj, x), device, args)
                sj_both = seconds_per_call(forward_backward(sj, x, grad), device, args)
            if x.numel() <= args.loop_max_numel:
                loop_fwd = seconds_per_call(forward_only(loop_lif, x), device, args)
                loop_both = seconds_per_call(forward_backward(loop_lif, x, grad), device, args)
            del x, grad
            release(device)

            label = "x".join(str(s) for s in shape)
            times.append([
                label, T, ms(ours_fwd), ms(sj_fwd), ms(loop_fwd), ratio(sj_fwd, ours_fwd),
                ms(ours_both), ms(sj_both), ms(loop_both), ratio(sj_both, ours_both),
                ratio(loop_both, ours_both),
            ])
            fwd_bytes, bwd_bytes = bytes_moved(shape[0] * shape[1] * shape[2], dtype)
            copy_bw = copy_bandwidth(shape[0] * shape[1] * shape[2], dtype, copy)
            bandwidth.append([
                label, T, gbps(copy_bw),
                gbps(fwd_bytes / ours_fwd), percent(fwd_bytes / ours_fwd / copy_bw),
                gbps(bwd_bytes / ours_bwd), percent(bwd_bytes / ours_bwd / copy_bw),
                gbps((fwd_bytes + bwd_bytes) / ours_both),
                percent((fwd_bytes + bwd_bytes) / ours_both / copy_bw),
            ])
            print(f"(a/b) {label}: done", file=sys.stderr)
    sj_label = f"SJ ({sj.name})" if sj is not None else "SJ (absent)"
    table_a = markdown_table(
        ["T x B x N", "T", "snnfast fwd ms", f"{sj_label} fwd ms", "loop fwd ms", "SJ/snnfast fwd",
         "snnfast fwd+bwd ms", f"{sj_label} fwd+bwd ms", "loop fwd+bwd ms", "SJ/snnfast fwd+bwd",
         "loop/snnfast fwd+bwd"],
        times,
    )
    table_b = markdown_table(
        ["T x B x N", "T", "copy GB/s", "fwd GB/s", "fwd % copy", "bwd GB/s", "bwd % copy",
         "fwd+bwd GB/s", "fwd+bwd % copy"],
        bandwidth,
    )
    return [
        ("(a) Time: snnfast.lif vs SpikingJelly LIFNode vs the per-step PyTorch loop", table_a),
        ("(b) Effective bandwidth of snnfast.lif against a device-to-device copy", table_b),
    ]


def section_imp(args, device, dtype):
    """(c) IF neuron (beta = 1, soft reset) with and without a learnable per-neuron u0."""
    import snnfast

    Ts = [2, 4] if args.dry_run else [2, 4, 8, 16, 32]
    Ns = [2**4, 2**6] if args.dry_run else [2**8, 2**12, 2**16, 2**20]
    rows = []
    for N in Ns:
        for T in Ts:
            x = torch.randn((T, N), device=device).to(dtype).view(T, 1, N).requires_grad_()
            grad = torch.randn((T, 1, N), device=device).to(dtype)
            u0 = torch.nn.Parameter(0.5 * torch.rand(N, device=device))

            def if_neuron(x, u0=None):
                return snnfast.lif(x, 1.0, reset="soft", u0=u0, surrogate="rectangle")

            def imp_neuron(x):
                u0.grad = None
                return if_neuron(x, u0)

            plain_fwd = seconds_per_call(forward_only(if_neuron, x), device, args)
            imp_fwd = seconds_per_call(forward_only(imp_neuron, x), device, args)
            plain_both = seconds_per_call(forward_backward(if_neuron, x, grad), device, args)
            imp_both = seconds_per_call(forward_backward(imp_neuron, x, grad), device, args)
            rows.append([
                T, N, us(plain_fwd), us(imp_fwd), percent(imp_fwd / plain_fwd - 1),
                us(plain_both), us(imp_both), percent(imp_both / plain_both - 1),
            ])
            del x, grad, u0
            release(device)
    table = markdown_table(
        ["T", "N", "IF fwd us", "IF+IMP fwd us", "IMP overhead fwd", "IF fwd+bwd us",
         "IF+IMP fwd+bwd us", "IMP overhead fwd+bwd"],
        rows,
    )
    return [("(c) IMP overhead: IF neuron, input (T, N) as [T, 1, N], with and without a "
             "learnable per-neuron u0", table)]


def section_shd(args, device, dtype, sj):
    """(d) The SHD regime: few neurons, long sequences."""
    B, N = (4, 16) if args.dry_run else (25, 256)
    Ts = [10, 20] if args.dry_run else [1000, 2000, 4000]
    rows = []
    for T in Ts:
        x = (0.4 + 0.8 * torch.randn((T, B, N), device=device)).to(dtype).requires_grad_()
        grad = torch.randn((T, B, N), device=device).to(dtype)
        ours_fwd = seconds_per_call(forward_only(snnfast_lif, x), device, args)
        ours_bwd = seconds_per_call(snnfast_backward_only(x.detach(), grad), device, args)
        ours_both = seconds_per_call(forward_backward(snnfast_lif, x, grad), device, args)
        sj_both = None
        if sj is not None:
            sj_both = seconds_per_call(forward_backward(sj, x, grad), device, args)
        copy = copy_seconds(x.detach(), args)
        fwd_bytes, bwd_bytes = bytes_moved(x.numel(), dtype)
        copy_bw = copy_bandwidth(x.numel(), dtype, copy)
        rows.append([
            T, f"{B}x{N}", ms(ours_fwd), ms(ours_bwd), ms(ours_both), ms(sj_both),
            ratio(sj_both, ours_both), gbps(copy_bw), gbps(fwd_bytes / ours_fwd),
            gbps(bwd_bytes / ours_bwd), percent((fwd_bytes + bwd_bytes) / ours_both / copy_bw),
        ])
        del x, grad
        release(device)
    table = markdown_table(
        ["T", "B x N", "fwd ms", "bwd ms", "fwd+bwd ms", "SJ fwd+bwd ms", "SJ/snnfast",
         "copy GB/s", "fwd GB/s", "bwd GB/s", "fwd+bwd % copy"],
        rows,
    )
    return [(f"(d) SHD regime: B x N = {B * N} neurons, long sequences", table)]


# --- report ---------------------------------------------------------------------------------

def ms(seconds):
    return "-" if seconds is None else f"{seconds * 1e3:.3f}"


def us(seconds):
    return "-" if seconds is None else f"{seconds * 1e6:.1f}"


def ratio(slow, fast):
    return "-" if slow is None or fast is None else f"{slow / fast:.2f}x"


def gbps(bytes_per_second):
    return f"{bytes_per_second / 1e9:.1f}"


def percent(fraction):
    return f"{100 * fraction:.1f}%"


def markdown_table(headers, rows):
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def describe(device, args, sj, command):
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        name = f"{props.name} ({props.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    else:
        name = f"CPU ({platform.processor() or platform.machine()}), dry run"
    lines = [
        "# snnfast.lif on CUDA: benchmarks",
        "",
        f"- Device: {name}",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Command: `{command}`",
        f"- torch {torch.__version__}, dtype {args.dtype}; times are medians of "
        f"{args.repeats} repeats of {args.iters} calls after {args.warmup} warm-up calls",
        f"- Neuron: LIF, beta = {BETA} (SpikingJelly LIFNode tau = {TAU}, decay_input=False), "
        f"hard reset to 0, threshold 1, sigmoid surrogate k = {SURROGATE_K}",
    ]
    if sj is not None:
        from importlib import metadata

        version = metadata.version("spikingjelly")
        lines.append(f"- SpikingJelly {version}, LIFNode(step_mode='m'), implementation: {sj.name}")
    else:
        lines.append("- SpikingJelly: not installed")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join(["python", "bench/bench_cuda.py", *argv])
    if args.dry_run:
        device = torch.device("cpu")
        args.warmup, args.iters, args.repeats = 1, 2, 2
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_cuda.py needs a CUDA GPU (or --dry-run)")
        device = torch.device("cuda")
        from snnfast import _library

        if "cuda" not in _library.LIF_DEVICES:
            sys.exit("snnfast._C has no CUDA kernels: build it on this machine first")
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    sj = SpikingJelly.load(device, args.sj_impl)

    sections = []
    if "a" in args.sections or "b" in args.sections:
        sections += section_sizes(args, device, dtype, sj)
    if "c" in args.sections:
        sections += section_imp(args, device, dtype)
    if "d" in args.sections:
        sections += section_shd(args, device, dtype, sj)

    report = describe(device, args, sj, command) + "\n"
    for title, table in sections:
        report += f"\n## {title}\n\n{table}\n"
    print(report)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
