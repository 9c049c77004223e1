"""Edge cases of the layers and the memory-saving paths that crashed or were ignored: an
empty sequence, torch.compile, a carried state of another shape, deep copies after a forward,
v_reset without a hard reset, a fixed tensor beta, and arguments checked the same way
everywhere."""
import copy
import inspect
import warnings

import pytest
import torch

import snnfast
from snnfast import reference
from snnfast.nn import IF, LIF, LinearLIF, RecurrentLIF


@pytest.mark.parametrize("op", ["lif", "lif_checkpointed", "lif_saved_bf16"])
def test_empty_sequence(op):
    extra = {"segment": 3} if op == "lif_checkpointed" else {}
    x = torch.rand(0, 2, 3, requires_grad=True)
    u0 = torch.rand(2, 3)
    spikes, u_last, membrane = getattr(snnfast, op)(x, 0.5, u0=u0, return_state=True, return_membrane=True,
                                                    **extra)
    assert spikes.shape == membrane.shape == (0, 2, 3)
    torch.testing.assert_close(u_last, u0)


def test_linear_lif_checks_binary_input_under_compile_fullgraph():
    torch.manual_seed(0)
    layer = LinearLIF(6, 4, beta=0.5)
    x = (torch.rand(5, 3, 6) > 0.5).float()
    compiled = torch.compile(layer, fullgraph=True)
    torch.testing.assert_close(compiled(x), layer(x))
    with pytest.raises(RuntimeError, match="spikes_in must hold only 0 and 1"):
        compiled(x * 0.5 + 0.25)


def test_stateful_recurrent_lif_with_another_batch_size_names_reset_state():
    layer = RecurrentLIF(3, 4, stateful=True)
    layer(torch.rand(5, 2, 3))
    with pytest.raises(ValueError, match=r"carried state has shape \(2, 4\).*\(3, 4\).*reset_state\(\)"):
        layer(torch.rand(5, 3, 3))
    layer.reset_state()
    assert layer(torch.rand(5, 3, 3)).shape == (5, 3, 4)


@pytest.mark.parametrize("make", [lambda: LIF(0.5, stateful=True), lambda: RecurrentLIF(3, 3, stateful=True),
                                  lambda: LIF(0.5, step_mode="s")], ids=["lif", "recurrent", "single_step"])
def test_deepcopy_of_a_stateful_layer_after_a_forward_in_grad_mode(make):
    layer = make()
    x = torch.rand(6, 2, 3, requires_grad=True) * 2
    layer(x[0] if layer.step_mode == "s" else x)
    twin = copy.deepcopy(layer)
    torch.testing.assert_close(twin.state, layer.state.detach())
    assert twin.state.grad_fn is None and layer.state.grad_fn is not None
    step = x[1] if layer.step_mode == "s" else x
    torch.testing.assert_close(twin(step.detach()), layer(step).detach())  # continues the same sequence


def test_deepcopy_of_convert_output_and_convert_of_a_model_after_a_forward():
    from spikingjelly.activation_based import neuron  # install.sh installs it
    x = torch.rand(5, 2, 4)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), neuron.LIFNode(step_mode="m"))
    model(x)  # SpikingJelly's membrane now has a graph
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = snnfast.convert(model)
    converted(x)
    twin = copy.deepcopy(converted)
    torch.testing.assert_close(twin[1].state, converted[1].state.detach())


@pytest.mark.parametrize("reset", ["soft", "none"])
def test_v_reset_without_a_hard_reset_is_an_error(reset):
    x = torch.rand(3, 2, 2)
    for call in (lambda: snnfast.lif(x, 0.5, reset=reset, v_reset=0.3),
                 lambda: reference.lif(x, 0.5, reset=reset, v_reset=0.3),
                 lambda: snnfast.recurrent_lif(x, torch.zeros(2, 2), 0.5, reset=reset, v_reset=0.3),
                 lambda: snnfast.lif_checkpointed(x, 0.5, segment=2, reset=reset, v_reset=0.3),
                 lambda: LIF(0.5, reset=reset, v_reset=0.3)):
        with pytest.raises(ValueError, match=rf"v_reset = 0.3 has no effect with reset='{reset}'"):
            call()
    snnfast.lif(x, 0.5, reset=reset)  # the default v_reset is fine
    snnfast.lif(x, 0.5, reset="hard", v_reset=0.3)


def test_linear_lif_tensor_beta_is_a_buffer():
    beta = torch.full((4,), 0.25)
    layer = LinearLIF(3, 4, beta=beta, threshold=torch.tensor(0.5))
    assert set(layer.state_dict()) == {"weight", "bias", "beta", "threshold"}
    moved = layer.to(torch.float64)
    assert moved.beta.dtype == torch.float64 and moved.threshold.dtype == torch.float64
    beta.fill_(0.9)  # the layer keeps its own copy
    assert layer.beta[0].item() == 0.25
    learned = LinearLIF(3, 4, beta=torch.nn.Parameter(torch.full((4,), 0.5)))
    assert "beta" in dict(learned.named_parameters())


@pytest.mark.parametrize("call, match", [
    (lambda x: snnfast.lif(x, 0.5, detach_reset="yes"), "detach_reset must be True or False"),
    (lambda x: snnfast.lif(x, 0.5, return_state=1), "return_state must be True or False"),
    (lambda x: reference.lif(x, 0.5, return_membrane=None), "return_membrane must be True or False"),
    (lambda x: snnfast.lif_saved_bf16(x, 0.5, keep_branches="no"), "keep_branches must be True or False"),
    (lambda x: snnfast.run_chunked(lambda c, s: (c, s), x, chunk=0), "chunk must be a positive int"),
    (lambda x: snnfast.truncated_backward(lambda c, s: (c, s), x, chunk=-1, loss_fn=None),
     "chunk must be a positive int"),
    (lambda x: snnfast.nn.LinearLIF(3, 2, beta=0.5, check_binary=2)(x), "check_binary must be True or False"),
    (lambda x: snnfast.nn.LinearLIF(3, 2, beta=0.5)(x, u0="a"), "u0 must be None, a float or a torch.Tensor"),
    (lambda x: LIF(0.5, stateful="yes"), "stateful must be True or False"),
    (lambda x: LinearLIF(3, 2, beta=0.5, reset="soft", v_reset=0.2), "v_reset = 0.2 has no effect"),
    (lambda x: LinearLIF(3, 2, beta=0.5, detach_reset=1), "detach_reset must be True or False"),
    (lambda x: LinearLIF(3, 2, beta=0.5, surrogate="box"), "surrogate must be one of"),
    (lambda x: IF(reset="hrad"), "reset must be one of"),
    (lambda x: RecurrentLIF(3, 0), "hidden must be a positive int"),
    (lambda x: snnfast.nn.LeakyReadout(0), "features must be a positive int"),
    (lambda x: snnfast.convert(torch.nn.Linear(2, 2), inplace="no"), "inplace must be True or False"),
    (lambda x: snnfast.convert("model"), "model must be a torch.nn.Module"),
])
def test_arguments_are_checked_by_name(call, match):
    with pytest.raises((TypeError, ValueError), match=match):
        call(torch.zeros(4, 2, 3))


@pytest.mark.parametrize("fn, own", [(snnfast.lif, ["return_events"]),
                                     (snnfast.recurrent_lif, ["detach_recurrent", "return_events"])])
def test_signature_lists_the_neuron_keywords_then_the_ops_own(fn, own):
    """help() and inspect show what the op accepts, its own flags after the neuron's."""
    from snnfast.ops._args import Neuron

    params = inspect.signature(fn).parameters
    neuron = list(Neuron._field_defaults)
    assert list(params)[-len(neuron) - len(own):] == neuron + own
    assert all(params[name].kind == inspect.Parameter.KEYWORD_ONLY for name in neuron + own)
