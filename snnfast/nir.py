"""Models in and out through NIR, the Neuromorphic Intermediate Representation (the `nir`
package): `to_nir(module, sample_input, dt=...)` writes a snnfast network as a nir.NIRGraph,
`from_nir(graph, dt=...)` builds a snnfast network from one.

NIR's neurons are continuous in time; snnfast's (docs/neuron.md) step once per time step.
`dt` is the length of a step in NIR's time unit, and `discretisation` says how a time
constant tau becomes a decay: "euler" (forward Euler, beta = 1 - dt / tau, as snnTorch and
Norse read NIR) or "exact" (beta = exp(-dt / tau), the exact solution for an input held
constant over the step). docs/neuron.md has the table of every node's fields.

What NIR cannot say raises an error that names the layer: a soft reset or no reset on a
spiking layer, a nonzero learnable initial membrane (IMP), a leak towards v_leak != 0.
Training-only settings (surrogate, detach_reset, which parameters are learnable) are not
part of NIR: an imported network has fixed decays and thresholds and the default surrogate.
"""
from __future__ import annotations

import collections
import copy
import numbers

import numpy as np
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .ops import _args
from .nn import DALIF, LIF, IF, LeakyReadout, LinearLIF, RecurrentLIF, TimeDistributed, TimeDropout
from .ops import lif as lif_op

__all__ = ["to_nir", "from_nir", "ScaledLIF", "LeakyIntegrator", "CubaLIF", "DISCRETISATIONS"]

DISCRETISATIONS = ("euler", "exact")


def _import_nir():
    try:
        import nir
    except ImportError:
        raise ImportError("snnfast's NIR import and export need the nir package: "
                          "pip install --no-deps nir==1.0.8 (install.sh does)") from None
    return nir


# --- modules for what NIR can say and snnfast.nn has no layer for -------------------------

def _fixed(module: nn.Module, name: str, value) -> None:
    """Stores a fixed float or tensor parameter (a tensor as a buffer, so that it moves with the module)."""
    if isinstance(value, torch.Tensor):
        module.register_buffer(name, value.detach().clone())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        setattr(module, name, float(value))
    else:
        raise TypeError(f"{name} must be a float or a torch.Tensor, got {type(value).__name__}")


class ScaledLIF(LIF):
    """LIF neurons with a fixed input scale alpha: h_t = beta * u_{t-1} + alpha * x_t.

    What a NIR LIF or IF becomes when its resistance r gives an alpha other than 1 and
    1 - beta (the two that snnfast.nn.LIF offers). Other arguments as snnfast.nn.LIF.
    """

    def __init__(self, beta, alpha, **lif_kwargs):
        super().__init__(beta=beta, **lif_kwargs)
        _fixed(self, "alpha", alpha)

    def _decays(self):
        return self.beta, self.alpha

    def extra_repr(self) -> str:
        alpha = self.alpha if isinstance(self.alpha, float) else f"tensor{tuple(self.alpha.shape)}"
        return f"alpha={alpha}, {super().extra_repr()}"


class LeakyIntegrator(nn.Module):
    """Non-spiking leaky integrators over [T, B, *F]: u_t = beta * u_{t-1} + alpha * x_t,
    u_0 = 0; returns the membrane trace [T, B, *F] (NIR's LI; the synaptic current of CubaLIF).

    beta and alpha are fixed floats or tensors shaped as in docs/neuron.md. Runs the fused op
    with reset="none", as snnfast.nn.LeakyReadout does with its learnable decay.
    """

    def __init__(self, beta, alpha=1.0):
        super().__init__()
        _fixed(self, "beta", beta)
        _fixed(self, "alpha", alpha)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, membrane = lif_op(x, self.beta, alpha=self.alpha, reset="none", return_membrane=True)
        return membrane

    def extra_repr(self) -> str:
        shown = (v if isinstance(v, float) else f"tensor{tuple(v.shape)}" for v in (self.beta, self.alpha))
        return "beta={}, alpha={}".format(*shown)


class CubaLIF(nn.Module):
    """Current-based LIF (NIR's CubaLIF, snnTorch's Synaptic): a leaky synaptic current
    i_t = beta_syn * i_{t-1} + alpha_syn * x_t (a LeakyIntegrator) drives LIF neurons,
    h_t = beta * u_{t-1} + alpha * i_t. Two fused calls, one per state."""

    def __init__(self, synapse: LeakyIntegrator, neuron: LIF):
        super().__init__()
        self.synapse = synapse
        self.neuron = neuron

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.neuron(self.synapse(x))


# --- the time constants --------------------------------------------------------------------

def _check_dt(dt, discretisation) -> float:
    if not isinstance(dt, numbers.Real) or isinstance(dt, bool) or not dt > 0:
        raise ValueError(f"dt must be a positive number (the length of one time step in NIR's time unit), got {dt!r}")
    if discretisation not in DISCRETISATIONS:
        raise ValueError(f"discretisation must be one of {DISCRETISATIONS}, got {discretisation!r}")
    return float(dt)


def _tau(beta: np.ndarray, dt: float, discretisation: str, where: str) -> np.ndarray:
    """The time constant whose decay over one step of dt is beta."""
    if np.any(beta < 0) or np.any(beta >= 1):
        raise ValueError(f"{where}: a NIR time constant needs 0 <= beta < 1, got beta in "
                         f"[{beta.min():.6g}, {beta.max():.6g}]")
    with np.errstate(divide="ignore"):
        return dt / (1 - beta) if discretisation == "euler" else -dt / np.log(beta)


def _decay(tau: np.ndarray, dt: float, discretisation: str, where: str) -> np.ndarray:
    """beta for a time constant tau; and k, the factor NIR's input gain (r or w_in) is scaled
    by in one step (dt / tau for Euler, 1 - beta exactly): alpha = gain * k."""
    tau = np.asarray(tau, dtype=np.float64)
    if np.any(tau < 0):
        raise ValueError(f"{where}: tau must not be negative, got {tau.min():.6g}")
    with np.errstate(divide="ignore"):
        if discretisation == "euler":
            beta = 1 - dt / tau
            if np.any(beta < 0):
                raise ValueError(f"{where}: dt = {dt:g} is longer than tau = {tau.min():.6g}, so forward Euler "
                                 f"gives a negative decay; use a smaller dt or discretisation='exact'")
            return beta, dt / tau
        beta = np.exp(-dt / tau)
        return beta, 1 - beta


def _gain(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """NIR's input gain (r, w_in) for a step's input scale alpha: alpha = gain * (1 - beta)
    under both discretisations (see _decay)."""
    return alpha / (1 - beta)


# --- export --------------------------------------------------------------------------------

def _numpy(value, F: tuple, where: str) -> np.ndarray:
    """A float, per-layer, per-channel or per-neuron value (docs/neuron.md) as a float64 array of shape F."""
    if not isinstance(value, torch.Tensor):
        return np.full(F, float(value))
    value = value.detach().to("cpu", torch.float64)
    if _args.param_kind(value, F, where) == "channel" and len(F) > 1:
        value = value.reshape(F[:1] + (1,) * (len(F) - 1))
    return np.broadcast_to(value.numpy(), F).copy()


def _spiking_fields(module: LIF, F: tuple, where: str) -> dict:
    """threshold and v_reset of a spiking layer, after checking that NIR can say its reset."""
    if module.reset_mode != "hard":
        raise ValueError(f"{where} has reset={module.reset_mode!r}; NIR's spiking neurons reset to "
                         f"v_reset (reset='hard') and have no other reset")
    if module.imp and bool(torch.any(module.u0 != 0)):
        raise ValueError(f"{where} has a learnable initial membrane (imp=True) that is not 0; NIR "
                         f"neurons start at 0 and have no field for it")
    threshold = _numpy(module.threshold, F, f"{where}: threshold")
    return dict(v_threshold=threshold, v_reset=np.full(F, module.v_reset))


def _spiking_node(nir, module: LIF, F: tuple, where: str, dt: float, discretisation: str):
    """nir.LIF, or nir.IF where beta = 1, for a snnfast neuron layer (LIF, IF, DALIF, ScaledLIF)."""
    fields = _spiking_fields(module, F, where)
    beta, alpha = module._decays()
    beta, alpha = _numpy(beta, F, f"{where}: beta"), _numpy(alpha, F, f"{where}: alpha")
    if np.all(beta == 1):
        # v_t = v_{t-1} + dt * r * I_t: no time constant, the same under both discretisations.
        return nir.IF(r=alpha / dt, **fields)
    tau = _tau(beta, dt, discretisation, where)
    return nir.LIF(tau=tau, r=_gain(alpha, beta), v_leak=np.zeros(F), **fields)


def _leaky_node(nir, beta, alpha, F: tuple, where: str, dt: float, discretisation: str):
    beta, alpha = _numpy(beta, F, f"{where}: beta"), _numpy(alpha, F, f"{where}: alpha")
    return nir.LI(tau=_tau(beta, dt, discretisation, where), r=_gain(alpha, beta), v_leak=np.zeros(F))


def _float64(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


def _affine(nir, weight, bias):
    if bias is None:
        return nir.Linear(weight=_float64(weight))
    return nir.Affine(weight=_float64(weight), bias=_float64(bias))


def _pair(value) -> np.ndarray:
    return np.array(value if isinstance(value, (tuple, list)) else (value, value), dtype=np.int64)


def _frame_node(nir, layer: nn.Module, shape: tuple, name: str):
    """The node for a layer applied to every step (inside TimeDistributed); shape is its
    input per step, without the batch dimension."""
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise ValueError(f"to_nir: {name!r} pads with {layer.padding_mode!r}; NIR's Conv2d pads with zeros")
        bias = layer.bias if layer.bias is not None else torch.zeros(layer.out_channels)
        padding = layer.padding if isinstance(layer.padding, str) else tuple(_pair(layer.padding))
        return nir.Conv2d(
            input_shape=tuple(int(s) for s in shape[-2:]), weight=_float64(layer.weight), bias=_float64(bias),
            stride=tuple(_pair(layer.stride)), padding=padding, dilation=tuple(_pair(layer.dilation)), groups=layer.groups,
        )
    if isinstance(layer, nn.AvgPool2d):
        if layer.ceil_mode or (not layer.count_include_pad and np.any(_pair(layer.padding))):
            raise ValueError(f"to_nir: {name!r} uses ceil_mode or count_include_pad=False, "
                             f"which NIR's pooling cannot say")
        stride = layer.kernel_size if layer.stride is None else layer.stride
        fields = dict(kernel_size=_pair(layer.kernel_size), stride=_pair(stride), padding=_pair(layer.padding))
        if layer.divisor_override is None:
            return nir.AvgPool2d(**fields)
        if layer.divisor_override == 1:
            return nir.SumPool2d(**fields)
        raise ValueError(f"to_nir: {name!r} has divisor_override={layer.divisor_override}; "
                         f"NIR pools by the mean or the sum (1)")
    if isinstance(layer, nn.Flatten):
        # The folded input is [T*B, *F]: NIR's dimensions count from F.
        if layer.start_dim == 0 or layer.end_dim == 0:
            raise ValueError(f"to_nir: {name!r} flattens the batch dimension")
        return nir.Flatten(input_type={"input": np.array(shape)}, start_dim=_frame_dim(layer.start_dim, 1),
                           end_dim=_frame_dim(layer.end_dim, 1))
    hint = " (NIR has no BatchNorm: fold it into the convolution before exporting)" if isinstance(
        layer, nn.modules.batchnorm._BatchNorm) else ""
    raise NotImplementedError(f"to_nir: {name!r} is a {type(layer).__name__}, which snnfast cannot write to NIR{hint}")


def _frame_dim(dim: int, leading: int) -> int:
    """A torch dimension of [*leading dims, *F] as NIR's dimension of F (negative ones count from the end)."""
    return dim - leading if dim >= 0 else dim


# The layers written as nodes (the tracer does not look inside them) and those left out
# because they are the identity at inference.
_LEAVES = (nn.Linear, LIF, DALIF, LeakyReadout, LinearLIF, TimeDistributed, nn.Flatten, LeakyIntegrator, CubaLIF)
_PASS_THROUGH = (nn.Identity, nn.Dropout, TimeDropout)


class _Exporter(TorchFunctionMode):
    """Runs the network once on sample_input and writes each layer it calls as NIR nodes.

    Module hooks see the layers; this mode sees the tensor operations between them (only
    flatten is allowed there: SpikingMLP's x.flatten(2)). snnfast's NIR graphs are chains:
    every layer must take the output of the one before.
    """

    def __init__(self, nir, root: nn.Module, sample_input: torch.Tensor, dt: float, discretisation: str):
        super().__init__()
        self.nir, self.dt, self.discretisation = nir, dt, discretisation
        self.names = {module: name.replace(".", "_") or "module" for name, module in root.named_modules()}
        self.nodes = {"input": nir.Input(input_type=np.array(sample_input.shape[2:]))}
        self.edges = []
        self.tail = "input"
        self.producer = {id(sample_input): "input"}
        self.alive = [sample_input]  # keeps the ids in `producer` from being reused
        self.inside = None           # the layer being run, whose own calls are not traced
        self.flattens = 0

    # -- the chain
    def _append(self, name: str, node) -> None:
        self.nodes[name] = node
        self.edges.append((self.tail, name))
        self.tail = name

    def _source(self, x, consumer: str) -> None:
        source = self.producer.get(id(x)) if isinstance(x, torch.Tensor) else None
        if source is None:
            raise NotImplementedError(f"to_nir: the input of {consumer} is not the network input or a layer's output "
                                      f"(an operation snnfast cannot write to NIR made it)")
        if source != self.tail:
            raise NotImplementedError(f"to_nir: {consumer} takes the output of {source!r}, not of {self.tail!r}; "
                                      f"snnfast writes chains of layers only (no branches or skip connections)")

    def _produced(self, out) -> None:
        self.producer[id(out)] = self.tail
        self.alive.append(out)

    # -- module hooks
    def pre_hook(self, module, args):
        if self.inside is not None:
            return
        name = self.names.get(module, type(module).__name__)
        if isinstance(module, _PASS_THROUGH + _LEAVES):
            self._source(args[0], f"layer {name!r}")
            self.inside = module
        elif not list(module.children()):
            raise NotImplementedError(f"to_nir: layer {name!r} is a {type(module).__name__}, "
                                      f"which snnfast cannot write to NIR")

    def post_hook(self, module, args, out):
        if module is not self.inside:
            return
        if not isinstance(module, _PASS_THROUGH):
            self._write(module, self.names.get(module, type(module).__name__), args[0], out)
        self._produced(out)
        self.inside = None

    # -- operations between layers
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        traced = [a for a in args if isinstance(a, torch.Tensor) and id(a) in self.producer]
        if self.inside is not None or not traced or not isinstance(out, torch.Tensor):
            return out
        op = getattr(func, "__name__", str(func))
        if op != "flatten":
            source = self.producer[id(traced[0])]
            raise NotImplementedError(f"to_nir: the network applies {op} to the output of {source!r} outside a "
                                      f"layer; NIR has no node for it (only flatten is written)")
        x = traced[0]
        self._source(x, "a flatten")
        if out.shape == x.shape:  # nothing to flatten: no node
            self._produced(out)
            return out
        start = args[1] if len(args) > 1 else kwargs.get("start_dim", 0)
        end = args[2] if len(args) > 2 else kwargs.get("end_dim", -1)
        start, end = (d if d >= 0 else d + x.dim() for d in (start, end))
        if start < 2:
            raise NotImplementedError("to_nir: the network flattens its time or batch dimension, which NIR cannot say")
        self.flattens += 1
        self._append(f"flatten_{self.flattens}", self.nir.Flatten(
            input_type={"input": np.array(x.shape[2:])}, start_dim=start - 2, end_dim=end - 2))
        self._produced(out)
        return out

    # -- the layers
    def _write(self, module, name: str, x: torch.Tensor, out: torch.Tensor) -> None:
        nir, dt, disc = self.nir, self.dt, self.discretisation
        where = f"to_nir: layer {name!r} ({type(module).__name__})"
        if getattr(module, "step_mode", "m") != "m":
            raise NotImplementedError(f"{where} has step_mode={module.step_mode!r}; export the network "
                                      f"with step_mode='m' layers and a [T, B, *F] sample_input")
        F = tuple(out.shape[2:])
        if isinstance(module, nn.Linear):
            self._append(name, _affine(nir, module.weight, module.bias))
        elif isinstance(module, RecurrentLIF):
            self._append(f"{name}.linear", _affine(nir, module.linear.weight, module.linear.bias))
            self._append(f"{name}.lif", _spiking_node(nir, module, F, where, dt, disc))
            # The cycle lif -> w_rec -> lif, as snnTorch writes RLeaky.
            self.nodes[f"{name}.w_rec"] = _affine(nir, module.V, None)
            self.edges += [(f"{name}.lif", f"{name}.w_rec"), (f"{name}.w_rec", f"{name}.lif")]
        elif isinstance(module, LinearLIF):
            self._append(f"{name}.linear", _affine(nir, module.weight, module.bias))
            self._append(f"{name}.lif", _spiking_node(nir, _LinearLIFNeuron(module), F, where, dt, disc))
        elif isinstance(module, (LIF, DALIF)):
            self._append(name, _spiking_node(nir, module, F, where, dt, disc))
        elif isinstance(module, LeakyReadout):
            self._append(name, _leaky_node(nir, module.beta, 1 - module.beta, F, where, dt, disc))
        elif isinstance(module, LeakyIntegrator):
            self._append(name, _leaky_node(nir, module.beta, module.alpha, F, where, dt, disc))
        elif isinstance(module, CubaLIF):
            self._append(name, _cuba_node(nir, module, F, where, dt, disc))
        elif isinstance(module, nn.Flatten):
            if min(d if d >= 0 else d + x.dim() for d in (module.start_dim, module.end_dim)) < 2:
                raise NotImplementedError(f"{where} flattens the time or batch dimension of [T, B, *F]")
            start, end = (_frame_dim(d, 2) for d in (module.start_dim, module.end_dim))
            self._append(name, nir.Flatten(input_type={"input": np.array(x.shape[2:])}, start_dim=start, end_dim=end))
        else:  # TimeDistributed: one node per layer, each on the shape it receives
            frames = x.flatten(0, 1)
            for index, layer in enumerate(module):
                layer_name = f"{name}_{index}" if len(module) > 1 else name
                if isinstance(layer, _PASS_THROUGH):
                    continue
                self._append(layer_name, _frame_node(nir, layer, tuple(frames.shape[1:]), layer_name))
                frames = layer(frames)


def _cuba_node(nir, module: CubaLIF, F: tuple, where: str, dt: float, discretisation: str):
    fields = _spiking_fields(module.neuron, F, where)
    beta, alpha = (_numpy(v, F, where) for v in module.neuron._decays())
    beta_syn, alpha_syn = (_numpy(v, F, f"{where}: synapse") for v in (module.synapse.beta, module.synapse.alpha))
    return nir.CubaLIF(
        tau_syn=_tau(beta_syn, dt, discretisation, f"{where}: synapse"), w_in=_gain(alpha_syn, beta_syn),
        tau_mem=_tau(beta, dt, discretisation, where), r=_gain(alpha, beta), v_leak=np.zeros(F), **fields,
    )


class _LinearLIFNeuron:
    """LinearLIF's neuron seen as a layer (LinearLIF keeps beta, alpha and threshold as given)."""

    def __init__(self, module: LinearLIF):
        self.reset_mode, self.v_reset, self.threshold = module.reset, module.v_reset, module.threshold
        self.imp, self._beta, self._alpha = False, module.beta, module.alpha

    def _decays(self):
        return self._beta, self._alpha


def to_nir(module: nn.Module, sample_input: torch.Tensor, *, dt: float, discretisation: str = "euler"):
    """Writes a snnfast network as a nir.NIRGraph.

    The network is run once (on a copy, without gradients) on sample_input [T, B, *F] to find
    its layers, their order and their shapes. Supported: nn.Linear, snnfast.nn's LIF, IF,
    DALIF, RecurrentLIF (written as a cycle lif -> w_rec -> lif), LinearLIF, LeakyReadout,
    TimeDistributed(Conv2d / AvgPool2d / Flatten), nn.Flatten and x.flatten over the neuron
    dimensions, this module's ScaledLIF, LeakyIntegrator and CubaLIF; dropout and Identity
    are left out (the identity at inference). Any other layer, a branch, or a reset NIR cannot
    say raises an error that names the layer.

    Args:
        module: the network, mapping [T, B, *F] to [T, B, ...], made of the layers above.
        sample_input: a [T, B, *F] input (T = B = 1 is enough).
        dt: the length of one time step in NIR's time unit (snnTorch uses 1e-4).
        discretisation: "euler" (tau = dt / (1 - beta)) or "exact" (tau = -dt / log(beta)).
    """
    nir = _import_nir()
    dt = _check_dt(dt, discretisation)
    if not isinstance(sample_input, torch.Tensor) or sample_input.dim() < 3:
        shape = tuple(sample_input.shape) if isinstance(sample_input, torch.Tensor) else type(sample_input).__name__
        raise ValueError(f"sample_input must be a [T, B, *F] tensor, got {shape}")
    network = copy.deepcopy(module)  # the run must not touch the caller's carried state
    exporter = _Exporter(nir, network, sample_input, dt, discretisation)
    hooks = []
    try:
        for sub in network.modules():
            hooks.append(sub.register_forward_pre_hook(exporter.pre_hook))
            hooks.append(sub.register_forward_hook(exporter.post_hook))
        with torch.no_grad(), exporter:
            out = network(sample_input)
    finally:
        for hook in hooks:
            hook.remove()
    if exporter.producer.get(id(out)) != exporter.tail:
        raise NotImplementedError("to_nir: the network's output is not the output of its last layer")
    exporter.nodes["output"] = nir.Output(output_type=np.array(out.shape[2:]))
    exporter.edges.append((exporter.tail, "output"))
    return nir.NIRGraph(nodes=exporter.nodes, edges=exporter.edges)


# --- import --------------------------------------------------------------------------------

def _inline_subgraphs(nir, graph):
    """(nodes, edges) of graph with every nested NIRGraph replaced by its nodes, named
    "outer.inner", and its Input / Output nodes bypassed."""
    nodes, edges = {}, list(graph.edges)
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner_nodes, inner_edges = _inline_subgraphs(nir, node)
        # Edges may name the subgraph ("sub") or its Input / Output node ("sub.input").
        ports = {f"{name}.{k}" for k, v in inner_nodes.items() if isinstance(v, (nir.Input, nir.Output))}
        edges = [(name if a in ports else a, name if b in ports else b) for a, b in edges]
        entries = [f"{name}.{b}" for a, b in inner_edges if isinstance(inner_nodes[a], nir.Input)]
        exits = [f"{name}.{a}" for a, b in inner_edges if isinstance(inner_nodes[b], nir.Output)]
        nodes.update({f"{name}.{k}": v for k, v in inner_nodes.items() if not isinstance(v, (nir.Input, nir.Output))})
        edges += [(f"{name}.{a}", f"{name}.{b}") for a, b in inner_edges
                  if not isinstance(inner_nodes[a], nir.Input) and not isinstance(inner_nodes[b], nir.Output)]
        edges = ([(a, e) for a, b in edges if b == name for e in entries]
                 + [(x, b) for a, b in edges if a == name for x in exits]
                 + [(a, b) for a, b in edges if name not in (a, b)])
    return nodes, edges


def _as_value(array: np.ndarray):
    """A float where every neuron has the same value, else a float32 tensor of the array's shape."""
    array = np.asarray(array, dtype=np.float64)
    if array.size and np.all(array == array.flat[0]):
        return float(array.flat[0])
    return torch.tensor(array, dtype=torch.float32)


def _nearly_equal(a: np.ndarray, b) -> bool:
    """Equal within 1e-6 relative, about 8 float32 ulps: an alpha computed from a graph
    written in float32 (snnTorch writes r = tau / dt) lands a few ulps from 1, and the layers
    compute in float32 anyway."""
    return bool(np.allclose(a, b, rtol=1e-6, atol=0))


class _Importer:
    def __init__(self, nir, dt: float, discretisation: str):
        self.nir, self.dt, self.discretisation = nir, dt, discretisation

    def decay(self, tau, gain, where):
        beta, k = _decay(tau, self.dt, self.discretisation, where)
        return beta, np.asarray(gain, dtype=np.float64) * k

    def lif_kwargs(self, node, name: str) -> tuple[dict, np.ndarray, np.ndarray]:
        """snnfast.nn.LIF keyword arguments for a NIR LIF / IF / CubaLIF (threshold, v_reset)
        and its (beta, alpha) arrays."""
        nir, where = self.nir, f"from_nir: node {name!r} (nir.{type(node).__name__})"
        if isinstance(node, nir.IF):
            beta, alpha = np.ones_like(np.asarray(node.r, np.float64)), np.asarray(node.r, np.float64) * self.dt
        else:
            tau = node.tau if isinstance(node, nir.LIF) else node.tau_mem
            if np.any(np.asarray(node.v_leak) != 0):
                raise NotImplementedError(f"{where} leaks towards v_leak != 0; snnfast's neurons leak towards 0")
            beta, alpha = self.decay(tau, node.r, where)
        v_reset = np.asarray(node.v_reset, dtype=np.float64)
        if v_reset.size and np.any(v_reset != v_reset.flat[0]):
            raise NotImplementedError(f"{where} has a v_reset per neuron; snnfast's v_reset is one value per layer")
        kwargs = dict(threshold=_as_value(node.v_threshold), v_reset=float(v_reset.flat[0]) if v_reset.size else 0.0)
        return kwargs, beta, alpha

    def neuron(self, node, name: str) -> LIF:
        kwargs, beta, alpha = self.lif_kwargs(node, name)
        if _nearly_equal(alpha, 1.0):
            return IF(**kwargs) if np.all(beta == 1) else LIF(beta=_as_value(beta), **kwargs)
        if _nearly_equal(alpha, 1 - beta):
            return LIF(beta=_as_value(beta), decay_input=True, **kwargs)
        return ScaledLIF(beta=_as_value(beta), alpha=_as_value(alpha), **kwargs)

    def recurrent(self, node, name: str, linear: nn.Linear, w_rec) -> RecurrentLIF:
        nir = self.nir
        if not isinstance(node, nir.LIF):
            raise NotImplementedError(f"from_nir: node {name!r} is a recurrent nir.{type(node).__name__}; "
                                      f"snnfast's recurrent layer (RecurrentLIF) has LIF neurons")
        kwargs, beta, alpha = self.lif_kwargs(node, name)
        if _nearly_equal(alpha, 1 - beta):
            kwargs["decay_input"] = True
        elif not _nearly_equal(alpha, 1.0):
            raise NotImplementedError(f"from_nir: recurrent node {name!r} scales its input by r * dt / tau other "
                                      f"than 1 or 1 - beta, which RecurrentLIF cannot")
        hidden = w_rec.weight.shape[0]
        biases = [b for b in (linear.bias, getattr(w_rec, "bias", None)) if b is not None]
        layer = RecurrentLIF(linear.in_features, hidden, bias=bool(biases), beta=_as_value(beta), **kwargs)
        with torch.no_grad():
            layer.linear.weight.copy_(linear.weight)
            if biases:
                layer.linear.bias.copy_(sum(torch.as_tensor(b, dtype=torch.float32) for b in biases))
            layer.V.copy_(torch.tensor(w_rec.weight, dtype=torch.float32))
        return layer

    def module(self, node, name: str) -> nn.Module:
        nir = self.nir
        where = f"from_nir: node {name!r} (nir.{type(node).__name__})"
        tensor = lambda a: torch.tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        ints = lambda a: tuple(int(v) for v in np.broadcast_to(np.asarray(a), (2,)))  # noqa: E731
        if isinstance(node, (nir.Affine, nir.Linear)):
            weight = np.asarray(node.weight)
            if weight.ndim != 2:
                raise NotImplementedError(f"{where} has a weight of shape {weight.shape}; snnfast maps 2-d weights")
            layer = nn.Linear(weight.shape[1], weight.shape[0], bias=isinstance(node, nir.Affine))
            with torch.no_grad():
                layer.weight.copy_(tensor(weight))
                if layer.bias is not None:
                    layer.bias.copy_(tensor(node.bias))
            return layer
        if isinstance(node, nir.Conv2d):
            weight = np.asarray(node.weight)
            conv = nn.Conv2d(weight.shape[1] * node.groups, weight.shape[0], weight.shape[2:], stride=ints(node.stride),
                             padding=node.padding if isinstance(node.padding, str) else ints(node.padding),
                             dilation=ints(node.dilation), groups=int(node.groups))
            with torch.no_grad():
                conv.weight.copy_(tensor(weight))
                conv.bias.copy_(tensor(node.bias))
            return TimeDistributed(conv)
        if isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            divisor = 1 if isinstance(node, nir.SumPool2d) else None  # sums exactly, without a division
            return TimeDistributed(nn.AvgPool2d(ints(node.kernel_size), ints(node.stride), ints(node.padding),
                                                divisor_override=divisor))
        if isinstance(node, nir.Flatten):
            # NIR counts the dimensions of F; the layer sees [T, B, *F].
            return nn.Flatten(*(d + 2 if d >= 0 else d for d in (node.start_dim, node.end_dim)))
        if isinstance(node, (nir.LIF, nir.IF)):
            return self.neuron(node, name)
        if isinstance(node, nir.LI):
            if np.any(np.asarray(node.v_leak) != 0):
                raise NotImplementedError(f"{where} leaks towards v_leak != 0; snnfast's neurons leak towards 0")
            beta, alpha = self.decay(node.tau, node.r, where)
            return LeakyIntegrator(_as_value(beta), _as_value(alpha))
        if isinstance(node, nir.CubaLIF):
            beta_syn, alpha_syn = self.decay(node.tau_syn, node.w_in, f"{where}: synapse")
            return CubaLIF(LeakyIntegrator(_as_value(beta_syn), _as_value(alpha_syn)), self.neuron(node, name))
        raise NotImplementedError(f"{where}: snnfast has no layer for this NIR node")


def from_nir(graph, *, dt: float, discretisation: str = "euler") -> nn.Sequential:
    """Builds a snnfast network from a nir.NIRGraph (or a path to a NIR file).

    Returns an nn.Sequential over time-major sequences [T, B, *F] whose layers are named after
    the graph's nodes: Affine / Linear -> nn.Linear, Conv2d / AvgPool2d / SumPool2d ->
    TimeDistributed(nn.Conv2d / nn.AvgPool2d), Flatten -> nn.Flatten, LIF -> snnfast.nn.LIF
    (ScaledLIF where the input scale is neither 1 nor 1 - beta), IF -> snnfast.nn.IF,
    LI -> LeakyIntegrator, CubaLIF -> CubaLIF, and a LIF with a Linear / Affine cycle back
    to it (snnTorch's RLeaky) -> snnfast.nn.RecurrentLIF, taking in the Linear before it.
    Nested subgraphs are inlined. Any other node, a branch or another cycle raises an error
    that names the node.

    Args:
        graph: a nir.NIRGraph, or a path that nir.read opens.
        dt: the length of one time step in the graph's time unit (1e-4 for snnTorch's graphs).
        discretisation: "euler" (beta = 1 - dt / tau) or "exact" (beta = exp(-dt / tau)).
    """
    nir = _import_nir()
    dt = _check_dt(dt, discretisation)
    if not isinstance(graph, nir.NIRGraph):
        graph = nir.read(graph)
    nodes, edges = _inline_subgraphs(nir, graph)
    edges = list(dict.fromkeys(edges))
    successors, predecessors = collections.defaultdict(list), collections.defaultdict(list)
    for a, b in edges:
        successors[a].append(b)
        predecessors[b].append(a)

    # Recurrent weights: a Linear / Affine fed by one spiking node and feeding only it back.
    loops = {}
    for name, node in nodes.items():
        if (isinstance(node, (nir.Linear, nir.Affine)) and len(predecessors[name]) == 1
                and successors[name] == predecessors[name]
                and isinstance(nodes[predecessors[name][0]], (nir.LIF, nir.IF, nir.CubaLIF))):
            loops[predecessors[name][0]] = name
    for neuron, w_rec in loops.items():
        successors[neuron].remove(w_rec)
        predecessors[neuron].remove(w_rec)

    inputs = [n for n, node in nodes.items() if isinstance(node, nir.Input)]
    if len(inputs) != 1:
        raise NotImplementedError(f"from_nir: the graph has {len(inputs)} Input nodes; snnfast builds graphs with one")
    importer = _Importer(nir, dt, discretisation)
    layers = collections.OrderedDict()
    name, seen = inputs[0], set()
    while not isinstance(nodes[name], nir.Output):
        if len(successors[name]) != 1:
            raise NotImplementedError(f"from_nir: node {name!r} feeds {len(successors[name])} nodes "
                                      f"({successors[name]}); snnfast builds chains of layers only")
        seen.add(name)
        name = successors[name][0]
        if name in seen:
            raise NotImplementedError(f"from_nir: node {name!r} is on a cycle that is not a recurrent layer")
        if len(predecessors[name]) != 1:
            raise NotImplementedError(f"from_nir: node {name!r} sums {len(predecessors[name])} inputs "
                                      f"({predecessors[name]}); snnfast builds chains of layers only")
        node = nodes[name]
        if isinstance(node, nir.Output):
            break
        key = name.replace(".", "_")
        if name in loops:
            before = next(reversed(layers), None)
            if before is None or type(layers[before]) is not nn.Linear:
                raise NotImplementedError(f"from_nir: recurrent node {name!r} does not follow a Linear / Affine node; "
                                          f"snnfast's RecurrentLIF is a Linear layer and recurrent LIF neurons")
            linear = layers.pop(before)
            layers[key] = importer.recurrent(node, name, linear, nodes[loops[name]])
        else:
            layers[key] = importer.module(node, name)
    return nn.Sequential(layers)
