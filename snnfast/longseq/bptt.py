"""Training over long sequences in less memory: ways to keep less than the plain op's
float32 membrane trace ([T, B, *F], 4 bytes per neuron-step) for the backward pass.

- lif_checkpointed: keeps the state every `segment` steps and recomputes each segment in the
  backward pass. Exact (float rounding of the parameter-gradient sums aside).
- lif_saved_bf16: keeps the trace in bfloat16 (2 bytes per neuron-step). Approximate; the
  error is stated in its docstring and in docs/benchmarks.md (memory).
- run_chunked / truncated_backward: a sequence run in chunks with the state carried from
  one chunk to the next (full BPTT, or truncated BPTT with a backward pass per chunk).

LinearLIF (snnfast/nn/linear.py) adds the input side: spikes saved as bits, the input
current recomputed.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..ops import _args, reference
from .. import surrogate as surrogates
from . import _segments
from ._segments import LIFCall


def _prepare(op, x, beta, neuron: dict):
    """Checks the neuron's arguments as snnfast.lif does, and that the compiled op can run
    them; returns the op's tensor arguments, its options and the checked Neuron (its
    surrogate an object)."""
    n = _args.neuron_args(op, x, None, beta, neuron)
    check_kernel_runs(op, x, n.surrogate, (x, n.beta, n.alpha, n.threshold, n.u0))
    tensors = [_args.as_tensor(p) for p in (n.beta, n.alpha, n.threshold)]
    u0 = None if n.u0 is None else _args.as_tensor(n.u0)
    return tensors, u0, LIFCall.options_of(n.reset, n.v_reset, n.detach_reset, n.surrogate), n


def check_kernel_runs(op: str, x: torch.Tensor, surrogate, tensors, name: str = "x") -> None:
    """The memory-saving paths call the compiled op directly, with no reference to fall
    back on: a clear error where it cannot run what is asked."""
    _segments.check_device(x, name)
    if not surrogates.in_kernel(surrogate):
        raise ValueError(
            f"{op}: the surrogate {type(surrogate).__qualname__} defines its own derivative, which the "
            "compiled kernels (rectangle, triangle, sigmoid, atan by name) do not compute; use "
            "snnfast.lif, which runs it in the reference loop"
        )
    _args.check_autograd(op, tensors)


class _CheckpointedLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, alpha, threshold, u0, options, segment, return_membrane):
        ctx.set_materialize_grads(False)
        x = x.contiguous()
        call = LIFCall(beta, alpha, threshold, options)
        ctx.bounds = _segments.segment_bounds(x.shape[0], segment)
        spikes, states, u_last, membrane = _segments.forward(
            call, lambda t0, t1: x[t0:t1], ctx.bounds, u0, x.shape[1:], x.dtype, return_membrane,
        )
        ctx.save_for_backward(x, beta, alpha, threshold, u0, states)
        ctx.options = options
        return spikes, u_last, membrane if return_membrane else x.new_empty(0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_u_last, grad_membrane):
        x, beta, alpha, threshold, u0, states = ctx.saved_tensors
        call = LIFCall(beta, alpha, threshold, ctx.options)
        needs = ctx.needs_input_grad[:5]
        grad_x = torch.empty_like(x) if needs[0] else None

        def take_grad_x(t0, t1, grad):
            grad_x[t0:t1] = grad

        grads = _segments.backward(
            call, lambda t0, t1: x[t0:t1], ctx.bounds, u0, states, grad_spikes,
            grad_membrane, grad_u_last, needs, take_grad_x, x.dtype,
        )
        return (grad_x, *grads, None, None, None)


@_args.neuron_signature
def lif_checkpointed(x: torch.Tensor, beta, *, segment: int, **neuron):
    """snnfast.lif with time-checkpointed BPTT: the same outputs and gradients, but instead of
    the [T, B, *F] membrane trace it saves the state at the start of every segment of
    `segment` steps (ceil(T / segment) - 1 states of [B, *F]) and, in the backward pass,
    recomputes one segment's membrane at a time with the forward op. Memory per neuron:
    T / segment saved states + segment recomputed steps, instead of T; segment ~ sqrt(T)
    keeps the sum smallest. The backward pass costs one more forward pass of the op.

    What is saved: x itself (the recomputation needs it), the per-segment states and the
    parameters. So this alone pays off when x is kept anyway (the network's input, or a
    tensor that another layer saves) or is smaller than the float32 trace (float16/bfloat16
    x). For a Linear layer in front, snnfast.nn.LinearLIF(segment=...) saves neither x nor the
    trace: it recomputes x from the layer's bit-packed input spikes.

    Gradients of x, beta, alpha, threshold and u0 equal snnfast.lif's: each segment's
    recomputed membrane is the forward's bit for bit, so only the summation order of the
    parameter gradients over segments differs. Arguments are those of snnfast.lif, plus
    segment (time steps per segment, >= 1). Runs where the compiled op runs (CPU, CUDA).
    """
    _segments.check_segment(segment)
    (beta_t, alpha_t, threshold_t), u0_t, options, n = _prepare("snnfast.lif_checkpointed", x, beta, neuron)
    spikes, u_last, membrane = _CheckpointedLIF.apply(
        x, beta_t, alpha_t, threshold_t, u0_t, options, segment, n.return_membrane)
    return _args.results(spikes, u_last, membrane, n.return_state, n.return_membrane)


# Rows of the trace rounded at a time: the checks below make a few temporaries of this size.
_ROUNDING_BLOCK = 1 << 20


def to_bfloat16_keeping_branches(membrane: torch.Tensor, threshold, surrogate) -> torch.Tensor:
    """membrane ([T, B, *F]) rounded to bfloat16, except where rounding would carry a value
    across a step of the backward pass: the threshold (the recomputed spike, and with it the
    reset's branch) or, for the rectangle surrogate, the edge of its window. There
    the neighbouring bfloat16 on the value's own side is taken instead (an error under one
    bfloat16 ulp rather than half of one), so that the backward pass takes the branches the
    forward values would have taken."""
    F = tuple(membrane.shape[2:])
    threshold = reference._broadcast(threshold, F, membrane.dtype, "threshold")
    trace = torch.empty(membrane.shape, dtype=torch.bfloat16, device=membrane.device)
    steps = max(1, _ROUNDING_BLOCK // max(1, math.prod(membrane.shape[1:])))
    for t0 in range(0, membrane.shape[0], steps):
        exact = membrane[t0:t0 + steps]
        rounded = exact.to(torch.bfloat16)
        back = rounded.to(exact.dtype)
        moved = (back >= threshold) != (exact >= threshold)
        if isinstance(surrogate, surrogates.Rectangle):  # the one surrogate that jumps
            moved |= (surrogate.derivative(back - threshold) == 0) != (surrogate.derivative(exact - threshold) == 0)
        toward_own_side = torch.where(back < exact, float("inf"), float("-inf")).to(torch.bfloat16)
        trace[t0:t0 + steps] = torch.where(moved, torch.nextafter(rounded, toward_own_side), rounded)
    return trace


class _BFloat16TraceLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, beta, alpha, threshold, u0, options, keep_branches_of, return_membrane):
        ctx.set_materialize_grads(False)
        spikes, membrane, u_last = LIFCall(beta, alpha, threshold, options).forward(x, u0)
        if keep_branches_of is not None:  # the surrogate, whose branches the rounding keeps
            trace = to_bfloat16_keeping_branches(membrane, threshold, keep_branches_of)
        else:
            trace = membrane.to(torch.bfloat16)
        ctx.save_for_backward(trace, x if ctx.needs_input_grad[2] else None, beta, alpha, threshold, u0)
        ctx.options = options
        ctx.x_dtype = x.dtype
        ctx.acc_dtype = membrane.dtype
        return spikes, u_last, membrane if return_membrane else x.new_empty(0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_spikes, grad_u_last, grad_membrane):
        trace, x, beta, alpha, threshold, u0 = ctx.saved_tensors
        membrane = trace.to(ctx.acc_dtype)
        if grad_spikes is None:
            grad_spikes = torch.zeros(membrane.shape, dtype=ctx.x_dtype, device=membrane.device)
        mask = ctx.needs_input_grad[:5]
        grads = LIFCall(beta, alpha, threshold, ctx.options).backward(
            grad_spikes, grad_membrane, grad_u_last, membrane, x, u0, mask)
        return tuple(g if needed else None for g, needed in zip(grads, mask)) + (None,) * 3


@_args.neuron_signature
def lif_saved_bf16(x: torch.Tensor, beta, *, keep_branches: bool = True, **neuron):
    """snnfast.lif that saves its membrane trace for the backward pass in bfloat16 (2 bytes
    per neuron-step instead of 4). The forward pass and its outputs are exact (float32); the
    backward pass runs the op's backward on the rounded trace, so the gradients are
    approximate.

    The backward pass branches on the saved membrane: it recomputes each spike (and with it
    the hard reset's branch) and evaluates the surrogate, which for the rectangle is a window.
    Plain rounding (keep_branches=False) carries the few membranes within half an ulp of the
    threshold or of a window edge to the other side, and each of those steps contributes an
    O(1) error that BPTT carries back in time: 2-15% of the gradient's norm in
    tests/test_bptt.py. keep_branches=True (the default) rounds those few values to the
    bfloat16 on their own side instead, so every branch is the forward's; what remains is the
    surrogate and the reset evaluated at a membrane off by less than one bfloat16 ulp
    (relative 2^-8). Tolerance, checked in tests/test_bptt.py and measured in
    docs/benchmarks.md (memory): the gradients of x, u0 and per-neuron parameters within 1e-2
    of float32's, relative to their norm. A per-layer or per-channel parameter's gradient is
    the sum of its neurons' and can be further off where they cancel (up to 0.2 relative for
    a per-layer threshold in tests/test_bptt.py's cases). Arguments are those of
    snnfast.lif, plus keep_branches.
    """
    _args.check_flag(keep_branches, "keep_branches")
    (beta_t, alpha_t, threshold_t), u0_t, options, n = _prepare("snnfast.lif_saved_bf16", x, beta, neuron)
    spikes, u_last, membrane = _BFloat16TraceLIF.apply(
        x, beta_t, alpha_t, threshold_t, u0_t, options, n.surrogate if keep_branches else None,
        n.return_membrane)
    return _args.results(spikes, u_last, membrane, n.return_state, n.return_membrane)


def _detach(state):
    if state is None or isinstance(state, torch.Tensor):
        return None if state is None else state.detach()
    return type(state)(_detach(s) for s in state)


def run_chunked(step: Callable, x: torch.Tensor, state=None, *, chunk: int, detach_state: bool = False):
    """Runs step(x_chunk, state) -> (out_chunk, state) over x in chunks of `chunk` time steps,
    the state of one chunk becoming the next one's, and returns (outputs joined along time,
    final state). With snnfast.lif, step passes u0=state and return_state=True; a state of
    several layers is a tuple (or list) of tensors.

    detach_state=False keeps the graph through the states: the gradients are those of one
    pass over the whole sequence (full BPTT), and so is the memory saved for backward.
    detach_state=True cuts it between chunks (truncated BPTT); to also keep only one chunk's
    saved tensors at a time, call backward per chunk: truncated_backward.
    """
    _args.check_positive_int(chunk, "chunk", "time steps per chunk")
    _args.check_flag(detach_state, "detach_state")
    outputs = []
    for t0 in range(0, x.shape[0], chunk):
        out, state = step(x[t0:t0 + chunk], state)
        outputs.append(out)
        if detach_state:
            state = _detach(state)
    return torch.cat(outputs), state


def truncated_backward(step: Callable, x: torch.Tensor, state=None, *, chunk: int,
                       loss_fn: Callable[[torch.Tensor, int, int], torch.Tensor]):
    """Truncated BPTT in chunks: for each chunk of `chunk` steps, runs
    step(x_chunk, state) -> (out_chunk, state), calls loss_fn(out_chunk, t0, t1).backward()
    (gradients accumulate in .grad) and carries the state on, detached. Only one chunk's
    tensors are saved for backward at a time. Returns (the summed loss, detached, final state).
    The gradients are those of run_chunked(..., detach_state=True) with the summed loss."""
    _args.check_positive_int(chunk, "chunk", "time steps per chunk")
    total = None
    for t0 in range(0, x.shape[0], chunk):
        t1 = min(t0 + chunk, x.shape[0])
        out, state = step(x[t0:t1], state)
        loss = loss_fn(out, t0, t1)
        loss.backward()
        total = loss.detach() if total is None else total + loss.detach()
        state = _detach(state)
    return total, state
