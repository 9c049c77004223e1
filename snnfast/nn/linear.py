"""LinearLIF: a Linear layer and LIF neurons in one autograd node that keeps its binary input
spikes packed as bits (1 bit per spike instead of 4 bytes) and recomputes the input current
W s + b where the backward pass needs it.

Below a crossover spike rate (EVENT_CROSSOVER in training, EVENT_CROSSOVER_INFERENCE where
autograd records nothing; measured in docs/benchmarks.md#event-linear)
the input current is computed on the input's events instead (snnfast.event_linear: the work
follows the spikes that fired) and the events replace the bits as the saved form of the input.
A layer on events runs one op for the current and the neurons (torch.ops.snnfast.
event_linear_lif: on the CPU the LIF kernel computes each step's current from the events, so
the current never goes to memory), whose LIF kernel also emits its output spikes as events
from its own pass (on the CPU; CUDA converts them after): the output spikes carry them
(snnfast.ops.event_linear.attached_events), and a next LinearLIF (or event_linear) takes
them instead of converting the dense spikes again.

Where autograd records nothing (torch.no_grad, or no input requires grad) nothing is saved:
the layer is then exactly nn.Linear (or event_linear) + snnfast.lif's inference op, with no
bits packed and, on the dense path, no check of the input's values.

Saved for backward: the packed input spikes ([T, B, ceil(in_features / 8)] bytes) or their
events (8 bytes per row + 4 per spike: fewer bytes than the bits below a rate of 1/32), the
weight, and either the membrane trace ([T, B, out_features], 4 bytes per neuron-step) or,
with segment=K, only the state at the start of every segment of K steps (time-checkpointed
BPTT, as snnfast.lif_checkpointed: each segment's current and membrane are recomputed in the
backward pass). Not saved: the input current, the float input spikes, the output spikes.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from ..ops import _args
from .. import surrogate as surrogates
from ..longseq import _segments, bitpack
from ..longseq._segments import LIFCall
from ..longseq.bptt import check_kernel_runs
from ..ops import _fused, _library
from ..ops import event_linear as events_ops

# Elements of unpacked input spikes materialised at a time in the backward pass, when the
# trace is kept (a checkpointed backward pass works segment by segment anyway).
_UNPACK_BLOCK = 1 << 20


# The input spike rates below which LinearLIF's events="auto" computes on the events: where the
# event path (conversion included) is as fast as the dense one on this project's benchmark
# machine (2 threads, bench/bench_events.py, docs/benchmarks.md#event-linear), for a training
# step (where autograd records: forward and backward) and for inference. Training crosses
# over first: the weight's gradient on the events loses to a GEMM at a lower rate than the
# forward's gathers do.
EVENT_CROSSOVER = 0.12
EVENT_CROSSOVER_INFERENCE = 0.25
# Rows of the input read to estimate its spike rate (evenly spaced): the estimate only picks
# the path, and both paths give the same results.
_RATE_SAMPLE_ROWS = 1024

_NOT_BINARY = ("spikes_in must hold only 0 and 1 (LinearLIF saves it as bits); "
               "use nn.Linear + snnfast.lif for other inputs")


class _LinearLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spikes_in, weight, bias, beta, alpha, threshold, u0, options, segment, check_binary,
                use_events, emit_events):
        ctx.set_materialize_grads(False)
        T, B, n_in = spikes_in.shape
        if check_binary and torch.compiler.is_compiling():
            # A compiled graph cannot branch on the values (a host sync); it checks them in an
            # assertion of its own instead.
            torch._assert_async(((spikes_in == 0) | (spikes_in == 1)).all(), _NOT_BINARY)
            check_binary = False
        if use_events:
            events = _input_events(spikes_in, check_binary)
            saved_input = (events.offsets, events.indices)
            current = _event_current(events.offsets, events.indices, weight, bias, B, segment is not None)
        else:
            saved_input = (_pack_bits(spikes_in, check_binary), None)

            def current(t0, t1):
                return F.linear(spikes_in[t0:t1], weight, bias)
        call = LIFCall(beta, alpha, threshold, options)
        state_shape = (B, weight.shape[0])
        offsets_out = indices_out = None
        if segment is None and emit_events:
            spikes, kept, u_last, offsets_out, indices_out = torch.ops.snnfast.event_linear_lif(
                events.offsets, events.indices, weight.t(), bias, T, B, beta, alpha, threshold, u0, *options, True)
            ctx.mark_non_differentiable(offsets_out, indices_out)
        elif segment is None:
            spikes, membrane, u_last = call.forward(current(0, T), u0)
            kept = membrane
        else:
            # The current is computed segment by segment here too, with the very matrix
            # shapes the backward pass recomputes it with, so that the recomputation gives the
            # same bits wherever the matrix product is deterministic for a given shape.
            ctx.bounds = _segments.segment_bounds(T, segment)
            spikes, kept, u_last, _ = _segments.forward(
                call, current, ctx.bounds, u0, state_shape, spikes_in.dtype,
            )
        ctx.save_for_backward(*saved_input, weight, bias, beta, alpha, threshold, u0, kept)
        ctx.use_events = use_events
        ctx.segment = segment
        ctx.options = options
        ctx.shape = (T, B, n_in)
        ctx.dtype = spikes_in.dtype
        return spikes, u_last, offsets_out, indices_out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_u_last, _grad_offsets, _grad_indices):
        packed, indices, weight, bias, beta, alpha, threshold, u0, kept = ctx.saved_tensors
        T, B, n_in = ctx.shape
        need_in, need_weight, need_bias = ctx.needs_input_grad[:3]
        need_current = need_in or need_weight or need_bias
        needs = (need_current,) + tuple(ctx.needs_input_grad[3:7])

        last_unpacked = {}

        def spikes_in(t0, t1):
            # A checkpointed segment asks twice (its current, then its weight gradient).
            if (t0, t1) not in last_unpacked:
                last_unpacked.clear()
                last_unpacked[(t0, t1)] = _unpack_bits(packed[t0:t1], n_in, ctx.dtype)
            return last_unpacked[(t0, t1)]

        if ctx.use_events:
            offsets = packed
            current = _event_current(offsets, indices, weight, bias, B, ctx.segment is not None)
        else:
            def current(t0, t1):
                return F.linear(spikes_in(t0, t1), weight, bias)

        grad_in = torch.empty(ctx.shape, dtype=ctx.dtype, device=packed.device) if need_in else None
        grad_weight = torch.zeros_like(weight) if need_weight else None
        grad_bias = torch.zeros_like(bias) if need_bias else None

        def take_grad_current(t0, t1, grad_current):
            # The events need no unpacking: one block.
            blocked = ctx.segment is None and not ctx.use_events
            steps = max(1, _UNPACK_BLOCK // max(1, B * n_in)) if blocked else (t1 - t0)
            for b0 in range(t0, t1, steps):
                b1 = min(b0 + steps, t1)
                grad = grad_current[b0 - t0:b1 - t0]
                if need_weight and ctx.use_events:
                    grad_weight.add_(torch.ops.snnfast.event_linear_weight_grad(
                        offsets[b0 * B:b1 * B + 1], indices, grad.flatten(0, 1), n_in).t())
                elif need_weight:
                    grad_weight.addmm_(grad.flatten(0, 1).t(), spikes_in(b0, b1).flatten(0, 1))
                if need_bias:
                    grad_bias.add_(grad.sum((0, 1)))
                if need_in:
                    torch.mm(grad.flatten(0, 1), weight, out=grad_in[b0:b1].flatten(0, 1))

        call = LIFCall(beta, alpha, threshold, ctx.options)
        if ctx.segment is None:
            grads = _segments.backward(
                call, current, [(0, T)], u0, None, grad_spikes, None, grad_u_last, needs,
                take_grad_current, ctx.dtype, membrane=kept,
            )
        else:
            grads = _segments.backward(
                call, current, ctx.bounds, u0, kept, grad_spikes, None, grad_u_last, needs,
                take_grad_current, ctx.dtype,
            )
        last_unpacked.clear()
        return (grad_in, grad_weight, grad_bias, *grads, None, None, None, None, None)


def _pack_bits(spikes_in, check_binary) -> torch.Tensor:
    """bitpack.pack_bits(spikes_in): by the compiled op where there is one (CPU and CUDA: one
    pass, the check of the values included; bitpack's torch ops take eight passes and most
    of the time of a training step of the 700-256-20 benchmark network), else by bitpack."""
    try:
        if spikes_in.device.type in _library.BITS_DEVICES:
            return torch.ops.snnfast.spikes_to_bits(spikes_in, check_binary)
        return bitpack.pack_bits(spikes_in, require_binary=check_binary)
    except (RuntimeError, ValueError) as error:
        if "only 0 and 1" in str(error):
            raise ValueError(_NOT_BINARY) from None
        raise


def _unpack_bits(packed, n, dtype) -> torch.Tensor:
    """bitpack.unpack_bits(packed, n, dtype), by the compiled op where there is one."""
    if packed.device.type in _library.BITS_DEVICES:
        return torch.ops.snnfast.bits_to_spikes(packed, n, dtype)
    return bitpack.unpack_bits(packed, n, dtype)


def _input_events(spikes_in, check_binary) -> events_ops.Events:
    """The events of spikes_in: those it carries (a LinearLIF's output) or its conversion,
    which checks the values in its one pass (no pass of its own)."""
    events = events_ops.attached_events(spikes_in)
    if events is not None:
        return events
    try:
        return events_ops.to_events(spikes_in, check_binary=check_binary)
    except RuntimeError as error:
        if "must hold only 0 and 1" in str(error):
            raise ValueError(_NOT_BINARY) from None
        raise


def _linear_lif_inference(spikes_in, weight, bias, beta, alpha, threshold, u0, options, check_binary,
                          use_events, emit_events):
    """linear_lif where autograd records nothing (no_grad, or no input requires grad): the
    current as nn.Linear (or event_linear) computes it, then the LIF op without the membrane
    trace, exactly nn.Linear + snnfast.lif. Nothing is saved, so the input is neither packed
    as bits nor, on the dense path, checked (it is checked where it becomes events)."""
    T, B, _ = spikes_in.shape
    if emit_events:
        events = _input_events(spikes_in, check_binary)
        spikes, _, u_last, offsets, indices = torch.ops.snnfast.event_linear_lif(
            events.offsets, events.indices, weight.t(), bias, T, B, beta, alpha, threshold, u0, *options, False)
        return spikes, u_last, offsets, indices
    if use_events:
        events = _input_events(spikes_in, check_binary)
        current = _event_current(events.offsets, events.indices, weight, bias, B)(0, T)
    else:
        current = F.linear(spikes_in, weight, bias)
    spikes, u_last = torch.ops.snnfast.lif_inference(current, beta, alpha, threshold, u0, *options)
    return spikes, u_last, None, None


def _event_current(offsets, indices, weight, bias, B, segmented=False):
    """current(t0, t1): F.linear of the input's steps [t0, t1) computed on its events."""
    # The op transposes the view weight.t() itself, faster than contiguous() does; a
    # checkpointed layer asks for the current once per segment, so it is transposed once here.
    weight_t = weight.t().contiguous() if segmented else weight.t()

    def current(t0, t1):
        rows = torch.ops.snnfast.event_linear(offsets[t0 * B:t1 * B + 1], indices, weight_t, bias)
        return rows.view(t1 - t0, B, weight.shape[0])

    return current


def _estimated_rate(spikes_in: torch.Tensor) -> float:
    """The mean of evenly spaced rows of spikes_in: for binary spikes, the fraction that are
    spikes (exact where it carries its events); for other values only a guess, and it only
    picks the path. Not count_nonzero, which takes 20x longer (2 ms on the
    700-feature input of bench_events, 1 thread; the auto path paid it on every call)."""
    events = events_ops.attached_events(spikes_in)
    if events is not None:
        return events.rate
    rows = spikes_in.reshape(spikes_in.shape[:-1].numel(), spikes_in.shape[-1])
    sample = rows[::max(1, rows.shape[0] // _RATE_SAMPLE_ROWS)]
    return float(sample.detach().sum()) / sample.numel() if sample.numel() else 0.0


def _check_events_flag(events) -> None:
    if events is not True and events is not False and events != "auto":
        raise ValueError(f'events must be "auto", True or False, got {events!r}')


def uses_events(spikes_in: torch.Tensor, weight: torch.Tensor, events, *, training: bool) -> bool:
    """Whether linear_lif computes on the events of spikes_in: events=True or False forces a
    path, "auto" takes the events where the event kernels run and the rate is below
    EVENT_CROSSOVER (training: autograd records the layer) or EVENT_CROSSOVER_INFERENCE."""
    _check_events_flag(events)
    supported = (spikes_in.device.type in _library.EVENT_DEVICES and spikes_in.dtype == weight.dtype
                 and weight.dtype in (torch.float32, torch.float64))
    if events is True and not supported:
        raise ValueError(
            f"events=True needs float32 or float64 spikes_in and weight of one dtype on a device with "
            f"the event kernels ({sorted(_library.EVENT_DEVICES) or 'none compiled'}), got spikes_in "
            f"{spikes_in.dtype} on {spikes_in.device}, weight {weight.dtype}; use events=False")
    if events != "auto":
        return events
    crossover = EVENT_CROSSOVER if training else EVENT_CROSSOVER_INFERENCE
    return supported and not torch.compiler.is_compiling() and _estimated_rate(spikes_in) < crossover


def linear_lif(
    spikes_in: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor],
    beta,
    *,
    alpha=1.0,
    threshold=1.0,
    reset: str = "hard",
    v_reset: float = 0.0,
    detach_reset: bool = False,
    u0=None,
    surrogate="rectangle",
    segment: Optional[int] = None,
    check_binary: bool = True,
    return_state: bool = False,
    events="auto",
):
    """snnfast.lif(F.linear(spikes_in, weight, bias), beta, ...) in one autograd node that saves
    spikes_in packed as bits and, with segment=K, only every K-th state.

    spikes_in: [T, B, in_features] binary spikes (0 or 1) in a float dtype: packing keeps
    only whether a value is nonzero. check_binary=True checks it where the input is packed
    as bits (one more comparison pass over the input, and a device-to-host sync on an
    accelerator) or converted to events (at no extra pass) and raises a ValueError
    otherwise; where autograd records nothing, the dense path packs nothing and checks
    nothing (its result is F.linear + snnfast.lif of whatever the input holds); under torch.compile, where a graph cannot branch on values, the check is an
    assertion in the graph (torch._assert_async: a RuntimeError on the CPU, a device-side
    assertion, which ends the process's CUDA context, on a GPU).

    Gradients (of spikes_in, weight, bias and the neuron's tensors) equal those of
    nn.Linear + snnfast.lif up to float rounding: the weight's gradient is summed over time
    in blocks, and the parameter gradients over segments.

    events: "auto" computes the current on the events of spikes_in (snnfast.event_linear)
    when its spike rate, estimated from evenly spaced rows, is below EVENT_CROSSOVER where
    autograd records the layer, EVENT_CROSSOVER_INFERENCE where it does not (and the dtype is
    float32 or float64); True or False forces that path or the dense one. Both
    give the same results up to float rounding. Returns spikes
    [T, B, out_features] in spikes_in's dtype, or (spikes, u_T) with return_state.
    """
    _args.check_linear_lif_args(spikes_in, weight, bias, check_binary)
    if segment is not None:
        _segments.check_segment(segment)
    # The neuron's arguments are checked against an empty current of the layer's output shape,
    # dtype and device.
    current_like = spikes_in.new_empty((0, spikes_in.shape[1], weight.shape[0]))
    surrogate = _args.check_lif_args(current_like, beta, alpha, threshold, u0, reset, v_reset, surrogate,
                                     detach_reset, return_state)
    check_kernel_runs("snnfast.nn.LinearLIF", spikes_in, surrogate,
                      (spikes_in, weight, bias, beta, alpha, threshold, u0), name="spikes_in")
    beta_t, alpha_t, threshold_t = (_args.as_tensor(p) for p in (beta, alpha, threshold))
    u0_t = None if u0 is None else _args.as_tensor(u0)
    tensors = (spikes_in, weight, bias, beta_t, alpha_t, threshold_t, u0_t)
    records = _fused._needs_graph(tensors)
    use_events = uses_events(spikes_in, weight, events, training=records)
    # The output spikes carry their events (attach_events) for a next layer on events, where
    # this layer's input was events too: the LIF kernel emits them from its own pass.
    emit_events = (use_events and spikes_in.device.type in _library.LIF_EVENTS_DEVICES
                   and not torch.compiler.is_compiling())
    options = LIFCall.options_of(reset, v_reset, detach_reset, surrogate)
    if not records:
        spikes, u_last, offsets, indices = _linear_lif_inference(
            spikes_in, weight, bias, beta_t, alpha_t, threshold_t, u0_t, options, bool(check_binary),
            use_events, emit_events)
    else:
        spikes, u_last, offsets, indices = _LinearLIF.apply(
            *tensors, options, segment, bool(check_binary), use_events, emit_events and segment is None)
    if offsets is not None:
        events_ops.attach_events(spikes, events_ops.Events(offsets, indices, spikes.shape))
    return (spikes, u_last) if return_state else spikes


class LinearLIF(torch.nn.Module):
    """nn.Linear(in_features, out_features) followed by LIF neurons (snnfast.lif), for binary
    input spikes [T, B, in_features], saving the input as bits or, below a crossover spike
    rate, computing on its events (events="auto", True or False: see linear_lif);
    segment=K also checkpoints the state every K steps. The weight and bias are initialised as
    nn.Linear's. beta, alpha and threshold are floats or tensors (an nn.Parameter is learned,
    another tensor is copied into a buffer); the other arguments are snnfast.lif's."""

    def __init__(self, in_features: int, out_features: int, *, beta, bias: bool = True,
                 alpha=1.0, threshold=1.0, reset: str = "hard", v_reset: float = 0.0,
                 detach_reset: bool = False, surrogate="rectangle", segment: Optional[int] = None,
                 check_binary: bool = True, events="auto", device=None, dtype=None):
        super().__init__()
        # The options are checked here, as LIF checks its own; the tensors at each call.
        _args.check_reset(reset, v_reset)
        for name, value in (("bias", bias), ("detach_reset", detach_reset), ("check_binary", check_binary)):
            _args.check_flag(value, name)
        if segment is not None:
            _segments.check_segment(segment)
        _check_events_flag(events)
        surrogate = surrogates.get(surrogate)
        factory = dict(device=device, dtype=dtype)
        self.in_features, self.out_features = in_features, out_features
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.bias = torch.nn.Parameter(torch.empty(out_features, **factory)) if bias else None
        for name, value in (("beta", beta), ("alpha", alpha), ("threshold", threshold)):
            if isinstance(value, torch.Tensor) and not isinstance(value, torch.nn.Parameter):
                # A fixed tensor is a buffer: in the state_dict, and moved by .to() (as in LIF).
                self.register_buffer(name, value.detach().clone())
            else:
                setattr(self, name, value)
        self.reset, self.v_reset, self.detach_reset = reset, v_reset, detach_reset
        self.surrogate, self.segment, self.check_binary = surrogate, segment, check_binary
        self.events = events
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.Linear's initialisation.
        torch.nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0
            torch.nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, spikes_in: torch.Tensor, u0=None, return_state: bool = False):
        return linear_lif(
            spikes_in, self.weight, self.bias, self.beta, alpha=self.alpha,
            threshold=self.threshold, reset=self.reset, v_reset=self.v_reset,
            detach_reset=self.detach_reset, u0=u0, surrogate=self.surrogate,
            segment=self.segment, check_binary=self.check_binary, return_state=return_state,
            events=self.events,
        )

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, segment={self.segment}, reset={self.reset!r}")
