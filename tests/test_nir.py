"""snnfast.to_nir / snnfast.from_nir: round trips through NIR, and the same spikes as snnTorch
in both directions (snnTorch 1.0's export_to_nir / import_from_nir)."""
import contextlib
import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

import snnfast
from snnfast.nir import CubaLIF, LeakyIntegrator, ScaledLIF
from snnfast.nn import DALIF, IF, LIF, LeakyReadout, LinearLIF, RecurrentLIF, TimeDistributed

nir = pytest.importorskip("nir", reason="nir is not installed (install.sh installs it)")

DT = 1e-3


def _spikes_in(*shape):
    return (torch.rand(*shape) < 0.4).float()


# Every module kind to_nir writes, each in a small network with an input that makes it fire.
def _linear_lif():
    return nn.Sequential(nn.Linear(6, 8), LIF(beta=0.8, threshold=0.7)), torch.rand(12, 3, 6) * 2


def _per_neuron_lif():
    lif = LIF(beta=torch.rand(8) * 0.8 + 0.1, threshold=torch.rand(8) + 0.5, v_reset=-0.25)
    return nn.Sequential(nn.Linear(6, 8, bias=False), lif), torch.rand(12, 3, 6) * 2


def _learnable_decay_input_lif():
    net = nn.Sequential(nn.Linear(6, 8), LIF(leak="learnable", learnable_shape="channel", channels=8,
                                             beta=0.6, decay_input=True, threshold=0.3))
    with torch.no_grad():
        net[1].beta_raw.uniform_(-1, 2)
    return net, torch.rand(12, 3, 6) * 2


def _if():
    return nn.Sequential(nn.Linear(6, 8), IF(threshold=0.5)), torch.rand(12, 3, 6)


def _dalif():
    return nn.Sequential(nn.Linear(6, 8), DALIF(alpha_init=0.5, beta_init=0.9)), torch.rand(12, 3, 6) * 2


def _scaled_lif():
    return nn.Sequential(nn.Linear(6, 8), ScaledLIF(beta=0.7, alpha=torch.rand(8) + 0.5)), torch.rand(12, 3, 6) * 2


def _recurrent():
    net = nn.Sequential(RecurrentLIF(6, 8, beta=0.9, threshold=0.6), nn.Linear(8, 4), LIF(beta=0.5, threshold=0.3))
    return net, torch.rand(20, 3, 6) * 2


def _linear_lif_fused():
    return nn.Sequential(LinearLIF(6, 8, beta=0.75, threshold=0.4)), _spikes_in(12, 3, 6)


def _conv_pool():
    net = nn.Sequential(
        TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)),
        LIF(beta=torch.rand(4) * 0.5 + 0.3, threshold=0.3),  # one beta per channel
        TimeDistributed(nn.AvgPool2d(2)), TimeDistributed(nn.AvgPool2d(2, divisor_override=1), nn.Flatten()),
        nn.Linear(4 * 2 * 2, 5), LIF(beta=0.6, threshold=0.3),
    )
    return net, torch.rand(8, 2, 2, 8, 8) * 3


def _leaky_readout():
    net = nn.Sequential(nn.Linear(6, 8), LIF(beta=0.8, threshold=0.5), nn.Linear(8, 3), LeakyReadout(3))
    with torch.no_grad():
        net[3].beta_raw.uniform_(0, 4)
    return net, torch.rand(12, 3, 6) * 2


def _cuba():
    cuba = CubaLIF(LeakyIntegrator(torch.rand(8) * 0.5 + 0.2, 1.0), LIF(beta=0.9, threshold=0.8))
    return nn.Sequential(nn.Linear(6, 8), cuba), torch.rand(12, 3, 6) * 2


def _mlp():
    # SpikingMLP flattens [T, B, 1, 28, 28] itself (x.flatten(2), outside any layer).
    net = snnfast.models.mnist_mlp()
    with torch.no_grad():
        net.layers[2].weight.mul_(4)
    return net, torch.rand(6, 2, 1, 28, 28) * 3


def _xor():
    # Recurrent hidden layer with learnable per-neuron decays and decay_input, leaky readout.
    return snnfast.models.xor_mlp(recurrent=True), _spikes_in(30, 2, 20)


KINDS = {f.__name__.lstrip("_"): f for f in (
    _linear_lif, _per_neuron_lif, _learnable_decay_input_lif, _if, _dalif, _scaled_lif, _recurrent,
    _linear_lif_fused, _conv_pool, _leaky_readout, _cuba, _mlp, _xor,
)}


def _fields(graph) -> dict:
    """Every node's array and number fields, by node name."""
    out = {}
    for name, node in graph.nodes.items():
        fields = {k: v for k, v in vars(node).items() if k not in ("input_type", "output_type", "metadata")}
        out[name] = (type(node).__name__, fields)
    return out


def _assert_same_graph(a, b) -> None:
    """The same nodes with identical values, up to the renaming from_nir does (a.b -> a_b)."""
    fa, fb = _fields(a), _fields(b)
    assert len(fa) == len(fb)
    for (kind_a, fields_a), (kind_b, fields_b) in zip(fa.values(), fb.values()):
        assert kind_a == kind_b
        assert fields_a.keys() == fields_b.keys()
        for key in fields_a:
            va, vb = fields_a[key], fields_b[key]
            if isinstance(va, np.ndarray) and va.dtype.kind == "f":
                # The modules hold float32: identical in float32 and, through the float64
                # formulas, within a few float64 ulps of it.
                np.testing.assert_array_equal(va.astype(np.float32), np.asarray(vb).astype(np.float32), err_msg=key)
            else:
                np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=key)


@pytest.mark.parametrize("discretisation", ["euler", "exact"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_round_trip_gives_identical_outputs_and_parameters(kind, discretisation):
    torch.manual_seed(0)
    net, x = KINDS[kind]()
    graph = snnfast.to_nir(net, x[:1, :1], dt=DT, discretisation=discretisation)
    back = snnfast.from_nir(graph, dt=DT, discretisation=discretisation)
    with torch.no_grad():
        expected, got = net(x), back(x)
    assert expected.abs().sum() > 0, "the network must be active for the comparison to mean something"
    if kind not in ("leaky_readout", "xor"):
        assert 0 < expected.mean() < 1, "some neurons fire, not all"
    assert torch.equal(got, expected)
    # The parameters: the imported network writes the same graph again.
    _assert_same_graph(graph, snnfast.to_nir(back, x[:1, :1], dt=DT, discretisation=discretisation))


def test_round_trip_through_a_file(tmp_path):
    torch.manual_seed(0)
    net, x = _recurrent()
    path = tmp_path / "net.nir"
    nir.write(path, snnfast.to_nir(net, x[:1, :1], dt=DT))
    back = snnfast.from_nir(str(path), dt=DT)
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


@pytest.mark.parametrize("outer_edges", ["to the subgraph", "to its ports"])
def test_nested_subgraphs_are_inlined(outer_edges):
    torch.manual_seed(0)
    net, x = _linear_lif()
    flat = snnfast.to_nir(net, x[:1, :1], dt=DT)
    inner = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])), "fc": flat.nodes["0"], "lif": flat.nodes["1"],
               "output": nir.Output(output_type=np.array([8]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")],
    )
    into, out_of = ("block", "block") if outer_edges == "to the subgraph" else ("block.input", "block.output")
    nested = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])), "block": inner,
               "output": nir.Output(output_type=np.array([8]))},
        edges=[("input", into), (out_of, "output")], type_check=False,
    )
    back = snnfast.from_nir(nested, dt=DT)
    assert list(dict(back.named_children())) == ["block_fc", "block_lif"]
    with torch.no_grad():
        assert torch.equal(back(x), net(x))


def test_the_mapping_of_time_constants():
    """docs/neuron.md's table: beta from tau, alpha from r, for both discretisations."""
    tau, r, dt = np.array([2e-3, 5e-3, 1e-2]), np.array([1.0, 3.0, 0.5]), 1e-3
    node = nir.LIF(tau=tau, r=r, v_leak=np.zeros(3), v_threshold=np.full(3, 0.7), v_reset=np.full(3, -0.1))
    graph = nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])), node, nir.Output(output_type=np.array([3])))
    expected = {"euler": (1 - dt / tau, dt / tau), "exact": (np.exp(-dt / tau), 1 - np.exp(-dt / tau))}
    for discretisation, (beta, k) in expected.items():
        (lif,) = snnfast.from_nir(graph, dt=dt, discretisation=discretisation)
        assert isinstance(lif, ScaledLIF)
        np.testing.assert_allclose(lif.beta.numpy(), beta, rtol=1e-6)
        np.testing.assert_allclose(lif.alpha.numpy(), r * k, rtol=1e-6)
        assert (lif.threshold, lif.v_reset, lif.reset_mode) == (0.7, -0.1, "hard")
    written = snnfast.to_nir(nn.Sequential(LIF(beta=0.8)), torch.zeros(1, 1, 2), dt=dt, discretisation="exact")
    np.testing.assert_allclose(written.nodes["0"].tau, -dt / math.log(0.8))
    np.testing.assert_allclose(written.nodes["0"].r, 1 / (1 - 0.8))  # alpha = r (1 - beta) = 1


def test_imported_modules_are_snnfast_layers():
    torch.manual_seed(0)
    net, x = _xor()
    back = snnfast.from_nir(snnfast.to_nir(net, x[:1, :1], dt=DT), dt=DT)
    kinds = [type(layer) for layer in back]
    assert kinds == [RecurrentLIF, nn.Linear, LeakyIntegrator]
    assert back[0].decay_input and back[0].threshold == 0.5
    torch.testing.assert_close(back[0].beta, net.layers[0].beta, rtol=0, atol=0)


# --- what NIR or snnfast cannot say raises ------------------------------------------------

@pytest.mark.parametrize("net, match", [
    (nn.Sequential(nn.Linear(4, 4), nn.ReLU()), "ReLU"),
    (nn.Sequential(nn.Linear(4, 4), LIF(beta=0.5, reset="soft")), "reset='soft'"),
    (nn.Sequential(nn.Linear(4, 4), IF(reset="none")), "reset='none'"),
    (nn.Sequential(nn.Linear(4, 4), LIF(beta=0.5, imp=True, imp_shape=(4,), imp_init=0.3)), "imp=True"),
    (nn.Sequential(TimeDistributed(nn.BatchNorm1d(4)), LIF(beta=0.5)), "BatchNorm1d"),
    (nn.Sequential(nn.Linear(4, 4), LIF(beta=torch.tensor([0.5, 1.0, 0.5, 0.5]))), "beta"),
])
def test_to_nir_raises_on_what_nir_cannot_say(net, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        snnfast.to_nir(net, torch.rand(2, 1, 4), dt=DT)


def test_to_nir_raises_on_a_branch():
    class Skip(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.lif = nn.Linear(4, 4), LIF(beta=0.5)

        def forward(self, x):
            return self.lif(self.fc(x) + x)

    with pytest.raises(NotImplementedError, match="add"):
        snnfast.to_nir(Skip(), torch.rand(2, 1, 4), dt=DT)


def test_to_nir_checks_its_arguments():
    net = nn.Sequential(nn.Linear(4, 4), LIF(beta=0.5))
    with pytest.raises(ValueError, match="dt"):
        snnfast.to_nir(net, torch.rand(2, 1, 4), dt=0)
    with pytest.raises(ValueError, match="discretisation"):
        snnfast.to_nir(net, torch.rand(2, 1, 4), dt=DT, discretisation="rk4")
    with pytest.raises(ValueError, match="sample_input"):
        snnfast.to_nir(net, torch.rand(1, 4), dt=DT)


def _graph(*nodes):
    return nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])), *nodes, nir.Output(output_type=np.array([3])),
                                  type_check=False)


@pytest.mark.parametrize("graph, match", [
    (_graph(nir.Threshold(threshold=np.ones(3))), "nir.Threshold"),
    (_graph(nir.Delay(delay=np.ones(3))), "nir.Delay"),
    (_graph(nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.full(3, 0.2), v_threshold=np.ones(3))), "v_leak"),
    (_graph(nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3),
                    v_reset=np.array([0.0, 0.1, 0.0]))), "v_reset"),
    (_graph(nir.LIF(tau=np.full(3, 1e-4), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))), "exact"),
])
def test_from_nir_raises_on_what_snnfast_cannot_map(graph, match):
    with pytest.raises((ValueError, NotImplementedError), match=match):
        snnfast.from_nir(graph, dt=DT)


def test_from_nir_raises_on_a_recurrent_cuba_lif():
    n = 3
    cuba = nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 5e-3), r=np.ones(n), v_leak=np.zeros(n),
                       v_threshold=np.ones(n))
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "fc": nir.Linear(weight=np.eye(n)), "lif": cuba,
               "w_rec": nir.Linear(weight=np.eye(n)), "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    with pytest.raises(NotImplementedError, match="recurrent nir.CubaLIF"):
        snnfast.from_nir(graph, dt=DT)


# --- snnTorch -------------------------------------------------------------------------------
# snnTorch's neurons agree with docs/neuron.md's hard reset to 0 with reset_mechanism="zero"
# and reset_delay=False (see docs/neuron.md, "NIR" for where they differ). snnTorch writes and
# reads NIR with dt = 1e-4 and forward Euler.

snn = pytest.importorskip("snntorch", reason="snntorch is not installed (install.sh installs it)")
SNNTORCH_DT = 1e-4


def _quiet(fn, *args, **kwargs):
    """snnTorch's NIR functions print progress to stdout."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _run_snntorch(net, x):
    """Steps an snnTorch network (init_hidden=True) through [T, B, ...]: an nn.Sequential of
    snnTorch layers, or the module import_from_nir builds (nirtorch's, which returns
    (output, state) and needs the state back: it carries the recurrent spikes)."""
    steps, state = [], None
    for x_t in x:
        if isinstance(net, torch.fx.GraphModule):
            out, state = net(x_t, state)
        else:
            out = net(x_t)
            out = out[0] if isinstance(out, tuple) else out
        steps.append(out)
    return torch.stack(steps)


# snnTorch's export_to_nir calls nirtorch's deprecated extract_nir_graph.
@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")
@pytest.mark.parametrize("leaky_reset_delay", [False, True])
def test_snntorch_network_imported_gives_the_same_spikes(leaky_reset_delay):
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    zero = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
    # Leaky's reset to zero agrees with the spec's for either reset_delay; RLeaky's and
    # Synaptic's only without the delay.
    leaky = snn.Leaky(beta=torch.rand(8) * 0.5 + 0.4, threshold=torch.full((8,), 0.5),
                      **{**zero, "reset_delay": leaky_reset_delay})
    net = nn.Sequential(
        nn.Linear(5, 8), leaky,
        nn.Linear(8, 6), snn.RLeaky(beta=0.7, threshold=0.4, linear_features=6, **zero),
        nn.Linear(6, 4), snn.Synaptic(alpha=torch.full((4,), 0.5), beta=torch.full((4,), 0.9),
                                      threshold=torch.full((4,), 0.4), output=True, **zero),
    )
    with torch.no_grad():
        net[2].weight.mul_(3)
    x = torch.rand(40, 4, 5) * 2
    # export_to_nir runs the network once: export a copy, so that `net` starts from rest.
    graph = _quiet(export_to_nir, copy.deepcopy(net), x[0], ignore_dims=[0])
    ours = snnfast.from_nir(graph, dt=SNNTORCH_DT)
    assert [type(layer) for layer in ours] == [nn.Linear, LIF, RecurrentLIF, nn.Linear, CubaLIF]
    with torch.no_grad():
        expected = _run_snntorch(net, x)
        got = ours(x)
        # Every layer fires, so every neuron kind is compared.
        assert all(0 < ours[:k](x).mean() < 1 for k in (2, 3, 5))
    assert torch.equal(got, expected)


@pytest.mark.filterwarnings("ignore:nirtorch.extract_nir_graph:DeprecationWarning")
def test_snntorch_conv_network_imported_gives_the_same_spikes():
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    zero = dict(init_hidden=True, reset_mechanism="zero", reset_delay=False)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        snn.Leaky(beta=torch.full((4, 8, 8), 0.8), threshold=torch.full((4, 8, 8), 0.5), **zero),
        nn.AvgPool2d(2), nn.Flatten(),  # snnTorch writes Flatten's dimensions counted from F
        nn.Linear(64, 5), snn.Leaky(beta=torch.full((5,), 0.9), threshold=torch.full((5,), 0.3), **zero),
    )
    x = torch.rand(20, 3, 2, 8, 8) * 2
    graph = _quiet(export_to_nir, copy.deepcopy(net), x[0], ignore_dims=[0])
    ours = snnfast.from_nir(graph, dt=SNNTORCH_DT)
    with torch.no_grad():
        expected = _run_snntorch(net, x)
        assert all(0 < ours[:k](x).mean() < 1 for k in (2, 6))
        assert torch.equal(ours(x), expected)


def test_snnfast_network_imported_into_snntorch_gives_the_same_spikes():
    # Feed-forward LIF only: snnTorch 1.0's import_from_nir wires a recurrent layer's input
    # through its recurrent weights (the edge input -> w_rec in its subgraph), so no recurrent
    # graph, snnTorch's own RLeaky export included, comes back with the same spikes; and it
    # reads nir.IF only with r = 1, as a Leaky with beta = 0.9 (docs/neuron.md, "NIR").
    from snntorch.import_nir import import_from_nir

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(5, 8), LIF(beta=0.8, threshold=0.5),
        nn.Linear(8, 6), LIF(beta=torch.rand(6) * 0.5 + 0.4, threshold=0.4),
        nn.Linear(6, 4), LIF(beta=0.95, threshold=0.6),
    )
    x = torch.rand(40, 4, 5) * 2
    theirs = _quiet(import_from_nir, snnfast.to_nir(net, x[:1, :1], dt=SNNTORCH_DT))
    with torch.no_grad():
        expected = net(x)
        got = _quiet(_run_snntorch, theirs, x)
        assert all(0 < net[:k](x).mean() < 1 for k in (2, 4, 6))
    assert torch.equal(got, expected)
