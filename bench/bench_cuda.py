"""GPU benchmark of the fused LIF ops (snnfast.lif, snnfast.recurrent_lif) on CUDA.

    python3 bench/bench_cuda.py --out runs/gpu/benchmarks_cuda.md --time-budget 200
    python3 bench/bench_cuda.py --dry-run          # tiny shapes on the CPU: checks the script

Sections, each a markdown table:
  (a) time of fwd and fwd+bwd: snnfast.lif, SpikingJelly 2.0's LIFNode (multi-step, whatever
      CUDA implementation SpikingJelly selects; --sj-impl picks one) and the per-step PyTorch
      loop (snnfast.reference.lif), for T x B x N from 2^20 to 2^28 and T in {4, 16, 100, 1000};
  (b) effective bandwidth of the same runs against a measured device-to-device copy, counting
      only the bytes the op must move (fwd: read x, write spikes and h; bwd: read grad and h,
      write grad_x);
  (c) the IMP overhead: an IF neuron (beta = 1, soft reset) with and without a learnable
      per-neuron u0, input (T, N) as [T, 1, N];
  (d) the SHD regime: B x N = 6,400 neurons, T in {1000, 2000, 4000};
  (e) snnfast.recurrent_lif fwd+bwd against the per-step PyTorch loop (bench_recurrent.py),
      on both CUDA paths: V in shared memory (persistent kernel) and the per-step cuBLAS path;
  (f) the event-driven Linear's kernels (event_linear, its weight gradient, to_events) against
      cuBLAS on the dense spikes, at spike rates of 1-20 %.
Every table runs the neuron of every LIF benchmark (snnfast.utils.benchmark.NEURON, named in
the report's header) and is timed by the toolkit's one timer (interleaved_times: samples of
back-to-back calls lasting at least --min-sample-ms, the device synchronised around each);
a figure is the median of --repeats samples after --warmup calls.

Nothing measured is lost: each table is appended to the markdown report (--out) and each row
to its JSON lines (--json, one object per line) as soon as it is measured, flushed to disk.
A section that raises (SpikingJelly's CUDA backend, say) is reported as failed and the next
one runs; a peer that fails loses only its own columns. --time-budget stops the run between
rows once the next row would not fit, and the report says which tables are partial.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from snnfast.utils import benchmark, benchmark_imp  # noqa: E402

# The LIF neuron that every implementation runs: SpikingJelly's LIFNode(tau=2,
# decay_input=True, v_reset=0) with its default Sigmoid surrogate (snnfast.utils.benchmark).
NEURON = benchmark.NEURON


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="append the markdown report here, table by table (it is "
                        "printed anyway); the file is started afresh")
    parser.add_argument("--json", help="append one JSON object per measured row and per table "
                        "here (default: --out with the suffix .jsonl)")
    parser.add_argument("--time-budget", type=float, default=None, metavar="SECONDS",
                        help="stop between rows once the next row would end past this many "
                        "seconds from the start")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny shapes on the CPU, to check that the script runs")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--sections", default="abdecf",
                        help="which sections to run, in this order, e.g. 'ac'")
    parser.add_argument("--sj-impl", default="auto", choices=["auto", "cuda", "triton", "torch"],
                        help="SpikingJelly's CUDA implementation (SJ_LIF_CUDA_IMPLEMENTATION)")
    parser.add_argument("--loop-max-numel", type=int, default=2**28,
                        help="skip the per-step PyTorch loop above this many elements")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before the samples")
    parser.add_argument("--min-sample-ms", type=float, default=50.0,
                        help="a sample repeats a call until it lasts this long (at least one call)")
    parser.add_argument("--repeats", type=int, default=5, help="samples per figure (their median)")
    return parser.parse_args(argv)


# --- timing ---------------------------------------------------------------------------------

def seconds_per_call(fn, device, args):
    """The median seconds per call of fn over args.repeats samples (benchmark.interleaved_times)."""
    (times,) = benchmark.interleaved_times([fn], device, args.repeats, warmup=args.warmup,
                                           min_sample_s=args.min_sample_ms / 1e3)
    return statistics.median(times)


def release(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()


# --- the implementations --------------------------------------------------------------------

def snnfast_lif(x, **kwargs):
    import snnfast

    return snnfast.lif(x, **NEURON, **kwargs)


def loop_lif(x):
    import snnfast

    return snnfast.reference.lif(x, **NEURON)


class SpikingJelly:
    """SpikingJelly 2.0's multi-step LIFNode with its state reset before every call."""

    def __init__(self, device, impl):
        os.environ["SJ_LIF_CUDA_IMPLEMENTATION"] = impl  # read when spikingjelly's ops load
        from spikingjelly.activation_based import functional, neuron, surrogate

        self.functional = functional
        self.node = neuron.LIFNode(
            tau=benchmark.TAU, decay_input=True, v_threshold=NEURON["threshold"], v_reset=NEURON["v_reset"],
            surrogate_function=surrogate.Sigmoid(alpha=benchmark.SHARPNESS), step_mode="m",
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
        """(A SpikingJelly or None, why not): any error of the peer's import is reported, not
        raised (a missing package, a CuPy that does not match the driver, ...)."""
        try:
            return SpikingJelly(device, impl), None
        except Exception as error:
            print(f"SpikingJelly not available: {error!r}", file=sys.stderr)
            return None, f"not available ({type(error).__name__}: {error})"


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
    beta, alpha, threshold = (torch.tensor(NEURON[k], device=x.device) for k in ("beta", "alpha", "threshold"))
    surrogate = NEURON["surrogate"]

    def call():
        torch.ops.snnfast.lif_backward(
            grad, None, None, membrane, None, beta, alpha, threshold, None, NEURON["reset"], NEURON["v_reset"],
            False, surrogate.name, surrogate.param, [True, False, False, False, False],
        )
    return call


# --- sections -------------------------------------------------------------------------------

def shape_for(numel, T, B):
    """[T, B, N] with N chosen so that T * B * N is as close to numel as it can be."""
    return T, B, max(1, round(numel / (T * B)))


def bytes_moved(numel, dtype):
    """The minimum (fwd, bwd) bytes the op moves: fwd reads x, writes spikes and h; bwd reads
    grad and h, writes grad_x. h is in the arithmetic dtype, float32 here."""
    sx, sh = torch.empty((), dtype=dtype).element_size(), 4
    return numel * (2 * sx + sh), numel * (2 * sx + sh)


def copy_bandwidth(x, args):
    """Bytes per second that a device-to-device copy of x's size moves (read + write)."""
    return benchmark.copy_rate(x.device, x.numel() * x.element_size(), repeats=args.repeats)


def section_sizes(bench):
    """Sections (a) and (b): one pass over the shapes, two tables."""
    args, device, dtype = bench.args, bench.device, bench.dtype
    if args.dry_run:
        numels, Ts, B = [2**10, 2**12], [4, 16], 4
    else:
        numels, Ts, B = [2**20, 2**22, 2**24, 2**26, 2**28], [4, 16, 100, 1000], 16
    times = bench.table(
        "a", "(a) Time: snnfast.lif vs SpikingJelly LIFNode vs the per-step PyTorch loop",
        ["T x B x N", "T", "snnfast fwd ms", "SJ fwd ms", "loop fwd ms", "SJ/snnfast fwd",
         "snnfast fwd+bwd ms", "SJ fwd+bwd ms", "loop fwd+bwd ms", "SJ/snnfast fwd+bwd",
         "loop/snnfast fwd+bwd"])
    bandwidth = bench.table(
        "b", "(b) Effective bandwidth of snnfast.lif against a device-to-device copy",
        ["T x B x N", "T", "copy GB/s", "fwd GB/s", "fwd % copy", "bwd GB/s", "bwd % copy",
         "fwd+bwd GB/s", "fwd+bwd % copy"])
    shapes = [shape_for(numel, T, B) for numel in numels for T in Ts]
    for k, shape in enumerate(shapes):
        bench.before_row(f"{k} of {len(shapes)} shapes")
        x = (0.4 + 0.8 * torch.randn(shape, device=device)).to(dtype).requires_grad_()
        grad = torch.randn(shape, device=device).to(dtype)
        ours_fwd = seconds_per_call(forward_only(snnfast_lif, x), device, args)
        ours_both = seconds_per_call(forward_backward(snnfast_lif, x, grad), device, args)
        ours_bwd = seconds_per_call(snnfast_backward_only(x.detach(), grad), device, args)
        copy_bw = copy_bandwidth(x, args)
        sj_fwd = bench.peer(lambda: seconds_per_call(forward_only(bench.sj, x), device, args))
        sj_both = bench.peer(lambda: seconds_per_call(forward_backward(bench.sj, x, grad), device, args))
        loop_fwd = loop_both = None
        if x.numel() <= args.loop_max_numel:
            loop_fwd = seconds_per_call(forward_only(loop_lif, x), device, args)
            loop_both = seconds_per_call(forward_backward(loop_lif, x, grad), device, args)
        del x, grad
        release(device)

        label = "x".join(str(s) for s in shape)
        T = shape[0]
        times.add([
            label, T, ms(ours_fwd), ms(sj_fwd), ms(loop_fwd), ratio(sj_fwd, ours_fwd),
            ms(ours_both), ms(sj_both), ms(loop_both), ratio(sj_both, ours_both),
            ratio(loop_both, ours_both),
        ])
        fwd_bytes, bwd_bytes = bytes_moved(shape[0] * shape[1] * shape[2], dtype)
        bandwidth.add([
            label, T, gbps(copy_bw),
            gbps(fwd_bytes / ours_fwd), percent(fwd_bytes / ours_fwd / copy_bw),
            gbps(bwd_bytes / ours_bwd), percent(bwd_bytes / ours_bwd / copy_bw),
            gbps((fwd_bytes + bwd_bytes) / ours_both),
            percent((fwd_bytes + bwd_bytes) / ours_both / copy_bw),
        ])
    times.notes.append(f"SJ: SpikingJelly LIFNode, {bench.sj_status()}")


def section_imp(bench):
    """(c) The IMP overhead: benchmark_imp's IF neuron with and without a learnable per-neuron u0."""
    import snnfast

    args, device, dtype = bench.args, bench.device, bench.dtype
    Ts = [2, 4] if args.dry_run else [2, 4, 8, 16, 32]
    Ns = [2**4, 2**6] if args.dry_run else [2**8, 2**12, 2**16, 2**20]
    table = bench.table(
        "c", "(c) IMP overhead: IF neuron, input (T, N) as [T, 1, N], with and without a "
        f"learnable per-neuron u0; neuron: {benchmark.describe_neuron(**benchmark_imp.NEURON)}",
        ["T", "N", "IF fwd us", "IF+IMP fwd us", "IMP overhead fwd", "IF fwd+bwd us",
         "IF+IMP fwd+bwd us", "IMP overhead fwd+bwd"])
    sizes = [(N, T) for N in Ns for T in Ts]
    for k, (N, T) in enumerate(sizes):
        bench.before_row(f"{k} of {len(sizes)} sizes")
        x = torch.randn((T, N), device=device).to(dtype).view(T, 1, N).requires_grad_()
        grad = torch.randn((T, 1, N), device=device).to(dtype)
        u0 = torch.nn.Parameter(0.5 * torch.rand(N, device=device))

        def if_neuron(x, u0=None):
            return snnfast.lif(x, **benchmark_imp.NEURON, u0=u0)

        def imp_neuron(x):
            u0.grad = None
            return if_neuron(x, u0)

        plain_fwd = seconds_per_call(forward_only(if_neuron, x), device, args)
        imp_fwd = seconds_per_call(forward_only(imp_neuron, x), device, args)
        plain_both = seconds_per_call(forward_backward(if_neuron, x, grad), device, args)
        imp_both = seconds_per_call(forward_backward(imp_neuron, x, grad), device, args)
        table.add([
            T, N, us(plain_fwd), us(imp_fwd), percent(imp_fwd / plain_fwd - 1),
            us(plain_both), us(imp_both), percent(imp_both / plain_both - 1),
        ])
        del x, grad, u0
        release(device)


def section_shd(bench):
    """(d) The SHD regime: few neurons, long sequences."""
    args, device, dtype = bench.args, bench.device, bench.dtype
    B, N = (4, 16) if args.dry_run else (25, 256)
    Ts = [10, 20] if args.dry_run else [1000, 2000, 4000]
    table = bench.table(
        "d", f"(d) SHD regime: B x N = {B * N} neurons, long sequences",
        ["T", "B x N", "fwd ms", "bwd ms", "fwd+bwd ms", "SJ fwd+bwd ms", "SJ/snnfast",
         "copy GB/s", "fwd GB/s", "bwd GB/s", "fwd+bwd % copy"])
    for k, T in enumerate(Ts):
        bench.before_row(f"{k} of {len(Ts)} lengths")
        x = (0.4 + 0.8 * torch.randn((T, B, N), device=device)).to(dtype).requires_grad_()
        grad = torch.randn((T, B, N), device=device).to(dtype)
        ours_fwd = seconds_per_call(forward_only(snnfast_lif, x), device, args)
        ours_bwd = seconds_per_call(snnfast_backward_only(x.detach(), grad), device, args)
        ours_both = seconds_per_call(forward_backward(snnfast_lif, x, grad), device, args)
        sj_both = bench.peer(lambda: seconds_per_call(forward_backward(bench.sj, x, grad), device, args))
        copy_bw = copy_bandwidth(x, args)
        fwd_bytes, bwd_bytes = bytes_moved(x.numel(), dtype)
        table.add([
            T, f"{B}x{N}", ms(ours_fwd), ms(ours_bwd), ms(ours_both), ms(sj_both),
            ratio(sj_both, ours_both), gbps(copy_bw), gbps(fwd_bytes / ours_fwd),
            gbps(bwd_bytes / ours_bwd), percent((fwd_bytes + bwd_bytes) / ours_both / copy_bw),
        ])
        del x, grad
        release(device)
    table.notes.append(f"SJ: SpikingJelly LIFNode, {bench.sj_status()}")


def section_recurrent(bench):
    """(e) snnfast.recurrent_lif against the per-step loop, timed by bench_recurrent.py."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import bench_recurrent

    args, device = bench.args, bench.device
    if args.dry_run:
        B, Ns, Ts, rounds = 2, [8, 12], [5], 1
    else:
        # float32 V of N = 200 (160 KB) fits a block's shared memory (the persistent kernel);
        # N = 512 and 1024 do not (the per-step cuBLAS path).
        B, Ns, Ts, rounds = 64, [64, 200, 512, 1024], [100, 1000], 3
    table = bench.table(
        "e", "(e) snnfast.recurrent_lif vs the per-step PyTorch loop (nn.Linear + neuron step), "
        f"float32, best of the rounds; neuron: {benchmark.describe_neuron(**bench_recurrent.NEURON)}",
        ["B", "N", "T", "loop fwd+bwd ms", "recurrent_lif fwd+bwd ms", "speed-up", "spike rate",
         "spikes differing"])
    sizes = [(N, T) for T in Ts for N in Ns]
    for k, (N, T) in enumerate(sizes):
        bench.before_row(f"{k} of {len(sizes)} sizes")
        (loop_ms, _), (fused_ms, _), rate, mismatch = bench_recurrent.bench(device.type, B, N, T, rounds)
        table.add([B, N, T, f"{loop_ms:.2f}", f"{fused_ms:.2f}", f"{loop_ms / fused_ms:.1f}x",
                   f"{rate:.2f}", f"{mismatch:.1e}"])
        release(device)


def section_events(bench):
    """(f) The event-driven Linear's kernels (snnfast.event_linear, issue 18) against cuBLAS on
    the dense spikes, forward (y = S W^T) and weight gradient (g^T S), float32."""
    from snnfast.ops.event_linear import to_events

    args, device = bench.args, bench.device
    if args.dry_run:
        M, layers, rates = 64, [(20, 8)], [0.1]
    else:  # T x B = 1000 x 32 rows; bench_events.py's two networks' first layers
        M, layers, rates = 32_000, [(700, 256), (2312, 512)], [0.01, 0.03, 0.1, 0.2]
    table = bench.table(
        "f", f"(f) event_linear vs cuBLAS on the dense spikes: M = {M} rows of Bernoulli spikes, float32",
        ["in -> out", "rate", "dense S W^T ms", "to_events ms", "event_linear ms", "dense / event",
         "dense / (to_events + event)", "dense g^T S ms", "event weight grad ms", "dense / event grad",
         "max abs diff"])
    sizes = [(layer, rate) for layer in layers for rate in rates]
    for k, ((n_in, n_out), rate) in enumerate(sizes):
        bench.before_row(f"{k} of {len(sizes)} sizes")
        spikes = (torch.rand((M, n_in), device=device) < rate).float()
        weight = torch.randn((n_out, n_in), device=device) / n_in ** 0.5
        weight_t = weight.t().contiguous()
        grad = torch.randn((M, n_out), device=device)
        events = to_events(spikes)
        ops = torch.ops.snnfast
        dense = seconds_per_call(lambda: torch.nn.functional.linear(spikes, weight), device, args)
        convert = seconds_per_call(lambda: to_events(spikes), device, args)
        event = seconds_per_call(lambda: ops.event_linear(events.offsets, events.indices, weight_t, None),
                                 device, args)
        dense_grad = seconds_per_call(lambda: grad.t().mm(spikes), device, args)
        event_grad = seconds_per_call(
            lambda: ops.event_linear_weight_grad(events.offsets, events.indices, grad, n_in), device, args)
        diff = max(
            float((ops.event_linear(events.offsets, events.indices, weight_t, None)
                   - torch.nn.functional.linear(spikes, weight)).abs().max()),
            float((ops.event_linear_weight_grad(events.offsets, events.indices, grad, n_in).t()
                   - grad.t().mm(spikes)).abs().max()))
        table.add([f"{n_in} -> {n_out}", f"{rate:.0%}", ms(dense), ms(convert), ms(event), ratio(dense, event),
                   ratio(dense, convert + event), ms(dense_grad), ms(event_grad), ratio(dense_grad, event_grad),
                   f"{diff:.1e}"])
        del spikes, weight, weight_t, grad, events
        release(device)


SECTIONS = {"a": section_sizes, "b": section_sizes, "c": section_imp, "d": section_shd,
            "e": section_recurrent, "f": section_events}


# --- running the sections -------------------------------------------------------------------

# A row of the GPU benchmark takes a few seconds (the per-step loop at T = 1000 the longest):
# the first row of a run is taken to last this long.
MIN_ROW_SECONDS = 5.0


class OutOfTime(Exception):
    """The time budget would be spent before the next row ends."""


class Report:
    """The markdown report and its JSON lines, each appended and flushed to disk as soon as it
    is known, so that a run killed at its time limit keeps everything measured before."""

    def __init__(self, markdown_path=None, json_path=None):
        self.paths = {"markdown": markdown_path, "json": json_path}
        for path in self.paths.values():
            if path:
                os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
                open(path, "w").close()

    def _append(self, kind, text):
        path = self.paths[kind]
        if path:
            with open(path, "a") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())

    def markdown(self, text):
        print(text, flush=True)
        self._append("markdown", text + "\n")

    def record(self, **fields):
        self._append("json", json.dumps(fields) + "\n")


class Table:
    """A markdown table whose rows go to the JSON lines as they are measured; the table itself
    goes to the report when its section ends (close), with the section's status."""

    def __init__(self, report, key, title, headers):
        self.report, self.key, self.title, self.headers = report, key, title, headers
        self.rows, self.notes = [], []

    def add(self, row):
        assert len(row) == len(self.headers), (self.headers, row)
        self.rows.append(row)
        self.report.record(table=self.key, row=dict(zip(self.headers, map(str, row))))
        print(f"({self.key}) row {len(self.rows)}: {' | '.join(map(str, row))}", file=sys.stderr,
              flush=True)

    def close(self, status, note=None):
        notes = ([f"**{status}**: {note}"] if note else []) + self.notes
        text = f"\n## {self.title}\n"
        if notes:
            text += "\n" + "\n".join(f"- {line}" for line in notes) + "\n"
        text += "\n" + markdown_table(self.headers, self.rows) + "\n"
        self.report.markdown(text)
        self.report.record(table=self.key, title=self.title, status=status, rows=len(self.rows),
                           note=note, notes=self.notes)


class Bench:
    """What the sections share: the arguments, the device, the peer, the report, the clock."""

    def __init__(self, args, device, report, sj=None, sj_status="not installed"):
        self.args, self.device, self.report = args, device, report
        self.dtype = getattr(torch, args.dtype)
        self.sj, self._sj_status = sj, sj_status
        self.start = time.monotonic()
        self.tables = []
        self._row_started = None
        self._longest_row = 0.0

    def table(self, key, title, headers):
        table = Table(self.report, key, title, headers)
        self.tables.append(table)
        return table

    def before_row(self, progress):
        """Raises OutOfTime where the row about to start, taken to last as long as the longest
        row so far in any section (at least MIN_ROW_SECONDS), would end past the budget."""
        now = time.monotonic()
        if self._row_started is not None:
            self._longest_row = max(self._longest_row, now - self._row_started)
        budget = self.args.time_budget
        expected = max(self._longest_row, 0.0 if self.args.dry_run else MIN_ROW_SECONDS)
        if budget is not None and now - self.start + expected > budget:
            raise OutOfTime(f"stopped by the time budget ({budget:.0f} s) after {progress}")
        self._row_started = now

    def end_section(self):
        """The row in flight has ended with its section."""
        if self._row_started is not None:
            self._longest_row = max(self._longest_row, time.monotonic() - self._row_started)
        self._row_started = None

    def peer(self, measure):
        """measure() for SpikingJelly, or None where it is absent or has failed: its first
        error is reported and its later columns stay empty, ours go on."""
        if self.sj is None:
            return None
        try:
            return measure()
        except Exception as error:
            traceback.print_exc()
            self.sj = None
            self._sj_status = f"failed, its columns are empty from here on ({type(error).__name__}: {error})"
            return None

    def sj_status(self):
        if self.sj is not None:
            return f"implementation: {self.sj.name}"
        return self._sj_status


def run_sections(bench, sections):
    """Runs each section in turn; returns [(key, status, note, seconds)]. A section that raises
    or runs out of time keeps the rows it measured and the next section runs."""
    results = []
    for key, fn in sections:
        bench.tables = []
        started = time.monotonic()
        status, note = "ok", None
        try:
            fn(bench)
        except OutOfTime as error:
            status, note = "partial", str(error)
        except Exception as error:
            traceback.print_exc()
            status, note = "failed", f"{type(error).__name__}: {error}"
        bench.end_section()
        if not bench.tables:
            bench.report.markdown(f"\n## ({key}) {fn.__name__}\n\n- **{status}**: {note}\n")
            bench.report.record(table=key, title=fn.__name__, status=status, rows=0, note=note)
        for table in bench.tables:
            table.close(status, note)
        results.append((key, status, note, time.monotonic() - started))
    return results


def selected_sections(letters):
    """(key, function) in the order asked for; (a) and (b) come from one pass."""
    unknown = set(letters) - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--sections: unknown section(s) {''.join(sorted(unknown))}; "
                         f"choose from {''.join(SECTIONS)}")
    chosen, seen = [], set()
    for letter in letters:
        fn = SECTIONS[letter]
        if fn not in seen:
            seen.add(fn)
            chosen.append(("ab" if fn is section_sizes else letter, fn))
    return chosen


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


def describe(device, args, sj_status, command):
    name = benchmark.machine(device)
    if device.type != "cuda":
        name = f"CPU ({name}), dry run"
    lines = [
        "# snnfast on CUDA: benchmarks",
        "",
        f"- Device: {name}",
        f"- Date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- Command: `{command}`",
        f"- Load average at the start: {benchmark.load_average()}",
        f"- dtype {args.dtype}; times are medians of {args.repeats} samples of at least "
        f"{args.min_sample_ms:g} ms (one call at the least) after {args.warmup} warm-up calls",
        f"- Neuron (sections a, b, d): {benchmark.describe_neuron(**NEURON)} (SpikingJelly LIFNode "
        f"tau = {benchmark.TAU:g}, decay_input=True); (c) and (e) name their own",
    ]
    if sj_status is None:
        from importlib import metadata

        try:
            version = metadata.version("spikingjelly")
        except metadata.PackageNotFoundError:  # imported from a folder, not installed
            version = "(version unknown)"
        lines.append(f"- SpikingJelly {version}, LIFNode(step_mode='m')")
    else:
        lines.append(f"- SpikingJelly: {sj_status}")
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = " ".join(["python3", "bench/bench_cuda.py", *argv])
    sections = selected_sections(args.sections)
    if args.dry_run:
        device = torch.device("cpu")
        args.warmup, args.min_sample_ms, args.repeats = 1, 1.0, 2
    else:
        if not torch.cuda.is_available():
            sys.exit("bench_cuda.py needs a CUDA GPU (or --dry-run)")
        device = torch.device("cuda")
        from snnfast import _library

        if "cuda" not in _library.LIF_DEVICES:
            sys.exit("snnfast._C has no CUDA kernels: build it on this machine first")
    torch.manual_seed(0)
    sj, sj_status = SpikingJelly.load(device, args.sj_impl)
    json_path = args.json or (os.path.splitext(args.out)[0] + ".jsonl" if args.out else None)
    report = Report(args.out, json_path)
    report.markdown(describe(device, args, sj_status, command))
    report.record(command=command, device=str(device), torch=torch.__version__, dtype=args.dtype)
    bench = Bench(args, device, report, sj, sj_status or "not installed")
    results = run_sections(bench, sections)
    for key, status, note, seconds in results:
        print(f"section ({key}): {status}, {seconds:.0f} s" + (f": {note}" if note else ""))
    return 1 if any(status == "failed" for _, status, _, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
