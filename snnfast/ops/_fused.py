"""What the fused ops (snnfast.lif, snnfast.recurrent_lif) share, written once: the call of
the compiled op or of the reference where there is no kernel, its fake (meta) kernels and its
autograd.

Each op has three schemas:
  <op>(x, [V,] beta, alpha, threshold, u0, <options>) -> (spikes, membrane, u_last)
  <op>_backward(grad_spikes, grad_membrane, grad_u_last, <saved>, <options>, output_mask)
      -> one gradient per tensor input
  <op>_inference(x, [V,] beta, alpha, threshold, u0, <options>) -> (spikes, u_last)
where <options> starts with reset, the first argument that is a string, and <saved> are the
forward's tensor inputs with x kept only for alpha's gradient and membrane (and, for
recurrent_lif, spikes) in front. The inference op writes no membrane trace: it runs where no
gradient can be asked for, so nothing is saved for a backward pass that cannot happen.
and each has
  <op>_events(x, [V,] beta, alpha, threshold, u0, <options>, save_membrane)
      -> (spikes, membrane, u_last, offsets, indices)
its forward with the spikes also as events (snnfast.ops.event_linear), whose autograd is
<op>'s where save_membrane (call_with_events: return_events=True).
"""
from __future__ import annotations

import math
import warnings

import torch

from .. import surrogate as surrogates
from . import _args, _library
from . import event_linear as events_ops

_warned = set()


def fall_back(op: str, x: torch.Tensor, devices, surrogate) -> bool:
    """Whether `op` runs in the reference instead of its kernel (warning once per op and
    cause): where no kernel is compiled for x's device, or for a surrogate the kernels do
    not know."""
    if x.device.type not in devices:
        cause = (op, x.device.type), (f"no compiled kernel for {x.device.type} tensors. Build the "
                                      "extension (see README.md)")
    elif not surrogates.in_kernel(surrogate):
        cause = (op, type(surrogate)), (f"the surrogate {type(surrogate).__qualname__} defines its "
                                        "own derivative, which the compiled kernels (rectangle, "
                                        "triangle, sigmoid, atan by name) do not compute")
    else:
        return False
    if cause[0] not in _warned:
        _warned.add(cause[0])
        warnings.warn(f"{op}: {cause[1]}; using the pure-PyTorch reference loop, which gives "
                      "the same results much more slowly.", stacklevel=4)
    return True


def call(name: str, devices, reference_fn, x, V, neuron: _args.Neuron, **extra):
    """snnfast.<name>(x, [V,] **neuron, **extra): the compiled op (its inference op where no
    gradient can be asked for and the membrane is not returned), or reference_fn where
    fall_back says. extra: the op's own options after the neuron's (recurrent_lif's
    detach_recurrent)."""
    op = f"snnfast.{name}"
    sequence = (x,) if V is None else (x, V)
    if fall_back(op, x, devices, neuron.surrogate):
        return reference_fn(*sequence, neuron.beta, **neuron.keywords(), **extra)
    tensors = (*sequence, neuron.beta, neuron.alpha, neuron.threshold, neuron.u0)
    _args.check_autograd(op, tensors, instead=f"snnfast.reference.{name}")
    args = (*sequence, *neuron.op_args(), *extra.values())
    if not neuron.return_membrane and not _needs_graph(tensors):
        spikes, u_last = getattr(torch.ops.snnfast, f"{name}_inference")(*args)
        return _args.results(spikes, u_last, None, neuron.return_state, False)
    spikes, membrane, u_last = getattr(torch.ops.snnfast, name)(*args)
    return _args.results(spikes, u_last, membrane, neuron.return_state, neuron.return_membrane)


def call_with_events(name: str, devices, events_devices, reference_fn, x, V, neuron: _args.Neuron, **extra):
    """call(), with return_events=True: the results, the events of the spikes last
    (snnfast.ops.event_linear.Events of the spikes as [T, B, N], N = prod(F)), which are also
    attached to the spikes where that is their shape (F of one dimension; attach_events), for
    a next event_linear or LinearLIF to take without converting them.

    The events come from the op where x's device is in events_devices (those of
    torch.ops.snnfast.<name>_events: on the CPU and CUDA; its gradients are <name>'s, the op
    keeping the membrane trace where autograd records); elsewhere (the reference fallback)
    the spikes are converted (to_events: one more pass over them), on a
    device with that conversion; on a device with neither a ValueError names return_events."""
    op = f"snnfast.{name}"
    emitted = x.device.type in events_devices and not fall_back(op, x, devices, neuron.surrogate)
    if not emitted and x.device.type not in _library.EVENT_DEVICES:
        raise ValueError(f"{op}: return_events=True needs the event ops on {x.device.type} tensors, which have "
                         f"none compiled (devices with them: {sorted(_library.EVENT_DEVICES) or 'none'}); leave "
                         "return_events=False, or run the layer on one of those devices")
    shape = torch.Size((*x.shape[:2], math.prod(x.shape[2:])))
    if emitted:
        sequence = (x,) if V is None else (x, V)
        tensors = (*sequence, neuron.beta, neuron.alpha, neuron.threshold, neuron.u0)
        _args.check_autograd(op, tensors, instead=f"snnfast.reference.{name} and snnfast.ops.event_linear.to_events")
        save_membrane = neuron.return_membrane or _needs_graph(tensors)
        events_op = getattr(torch.ops.snnfast, f"{name}_events")
        spikes, membrane, u_last, offsets, indices = events_op(*sequence, *neuron.op_args(), *extra.values(),
                                                                save_membrane)
        out = _args.results(spikes, u_last, membrane, neuron.return_state, neuron.return_membrane)
        events = events_ops.Events(offsets, indices, shape)
    else:
        out = call(name, devices, reference_fn, x, V, neuron, **extra)
        spikes = out[0] if isinstance(out, tuple) else out
        events = events_ops.to_events(spikes.reshape(shape), check_binary=False)
    if spikes.shape == shape:
        events_ops.attach_events(spikes, events)
    return (*out, events) if isinstance(out, tuple) else (out, events)


def _needs_graph(tensors) -> bool:
    """Whether autograd would record the op: grad mode on and an input that requires grad."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad
                                           for t in tensors)


def _split(inputs) -> tuple:
    """(tensors, options) of an op's arguments: the options start at reset, the first string."""
    first_option = next(i for i, value in enumerate(inputs) if isinstance(value, str))
    return tuple(inputs[:first_option]), tuple(inputs[first_option:])


def _fake_forward(x, *inputs):
    acc = _args.acc_dtype(x.dtype)
    return x.new_empty(x.shape), x.new_empty(x.shape, dtype=acc), x.new_empty(x.shape[1:], dtype=acc)


def _fake_inference(x, *inputs):
    return x.new_empty(x.shape), x.new_empty(x.shape[1:], dtype=_args.acc_dtype(x.dtype))


def _fake_backward(grad_spikes, grad_membrane, grad_u_last, *inputs):
    saved, options = _split(inputs)
    output_mask = options[-1]
    # The gradients are for x (shaped like membrane, in grad_spikes' dtype) and the last
    # len(output_mask) - 1 saved tensors ([V,] beta, alpha, threshold, u0); membrane is just
    # before x, which is just before them.
    membrane = saved[-len(output_mask) - 1]
    params = saved[len(saved) - len(output_mask) + 1:]

    def grad_like(needed, t, dtype=None):
        if needed and t is not None:
            return t.new_empty(t.shape, dtype=dtype or t.dtype)
        return membrane.new_empty((0,))

    return (grad_like(output_mask[0], membrane, grad_spikes.dtype),
            *(grad_like(needed, t) for needed, t in zip(output_mask[1:], params)))


def register(name: str) -> None:
    """Registers the fake kernels of torch.ops.snnfast.<name> and <name>_backward and the
    autograd of <name>."""
    register_fakes("snnfast", name)
    _register_autograd(name, name)


def register_events(name: str) -> None:
    """Registers the autograd of torch.ops.snnfast.<name>_events (its fake kernel is in
    event_linear.py): <name>'s, through <name>_backward, where its last argument
    save_membrane is True."""
    _register_autograd(f"{name}_events", name, trailing_options=1)


def _register_autograd(op_name: str, name: str, trailing_options: int = 0) -> None:
    """The autograd of torch.ops.snnfast.<op_name>, whose first three outputs are <name>'s
    (spikes, membrane, u_last) and whose inputs are <name>'s and trailing_options more."""
    op = f"snnfast.{op_name}"
    backward_op = getattr(torch.ops.snnfast, f"{name}_backward")

    def setup_context(ctx, inputs, output):
        tensors, options = _split(inputs)
        if trailing_options and not options[-1]:
            raise RuntimeError(f"{op}: save_membrane=False keeps no membrane trace, which the backward pass "
                               "needs; pass save_membrane=True where autograd records")
        x, *params = tensors  # params: [V,] beta, alpha, threshold, u0
        spikes, membrane = output[:2]
        # Gradients of unused outputs stay None instead of becoming [T, B, *F] zeros.
        ctx.set_materialize_grads(False)
        ctx.x_meta = (x.shape, x.dtype, x.device)
        need_alpha = ctx.needs_input_grad[len(tensors) - 3]
        # recurrent_lif reads o_{t-1} for the gradients of V and alpha's recurrent part.
        front = (spikes if ctx.needs_input_grad[1] or need_alpha else None,) if len(params) == 5 else ()
        ctx.save_for_backward(*front, membrane, x if need_alpha else None, *params)
        ctx.options = options[:len(options) - trailing_options]
        ctx.n_inputs = len(tensors)

    def backward(ctx, grad_spikes, grad_membrane, grad_u_last, *_grad_events):
        saved = ctx.saved_tensors
        _args.check_first_order(op, (grad_spikes, grad_membrane, grad_u_last, *saved),
                                instead=f"snnfast.reference.{name}")
        output_mask = list(ctx.needs_input_grad[:ctx.n_inputs])
        if grad_spikes is None:
            shape, dtype, device = ctx.x_meta
            grad_spikes = torch.zeros(shape, dtype=dtype, device=device)
        grads = backward_op(grad_spikes, grad_membrane, grad_u_last, *saved, *ctx.options, output_mask)
        no_options = (None,) * (len(ctx.options) + trailing_options)
        return tuple(g if needed else None for g, needed in zip(grads, output_mask)) + no_options

    torch.library.register_autograd(f"snnfast::{op_name}", backward, setup_context=setup_context)


def register_fakes(namespace: str, name: str) -> None:
    """The fake kernels of namespace::<name>, <name>_backward and <name>_inference; also for
    another namespace's twins of the ops (the tests' emulated CUDA device)."""
    torch.library.register_fake(f"{namespace}::{name}")(_fake_forward)
    torch.library.register_fake(f"{namespace}::{name}_backward")(_fake_backward)
    torch.library.register_fake(f"{namespace}::{name}_inference")(_fake_inference)
