"""Every network runs forward and backward on a tiny batch (CPU, and CUDA when present), and
its neuron switch changes the neurons it is built with."""
import functools

import pytest
import torch

from snnfast import models
from snnfast.nn import DALIF, IF, LIF, RecurrentLIF

T, B = 2, 2

# (factory, input shape [T, B, ...], classes); spatial sizes kept tiny where the network allows.
NETWORKS = {
    "shd_mlp": (models.shd_mlp, (T, B, 700), 20),
    "ssc_mlp": (models.ssc_mlp, (T, B, 700), 35),
    "nmnist_mlp": (models.nmnist_mlp, (T, B, 2, 34, 34), 10),
    "dvs_gesture_mlp": (models.dvs_gesture_mlp, (T, B, 2, 128, 128), 11),
    "mnist_mlp": (models.mnist_mlp, (T, B, 1, 28, 28), 10),
    "shd_mlp_recurrent": (functools.partial(models.shd_mlp, recurrent=True), (T, B, 700), 20),
    "cifar10_convnet": (functools.partial(models.cifar10_convnet, input_size=8), (T, B, 3, 8, 8), 10),
    "vgg11": (functools.partial(models.vgg11, in_channels=2), (T, B, 2, 32, 32), 11),
    "vgg16": (models.vgg16, (T, B, 3, 32, 32), 10),
    "resnet19": (models.resnet19, (T, B, 3, 8, 8), 10),
    "resnet20": (models.resnet20, (T, B, 3, 8, 8), 10),
    "sew_resnet18": (functools.partial(models.sew_resnet18, 10), (T, B, 3, 16, 16), 10),
    "sew_resnet34_imp": (functools.partial(models.sew_resnet34, 10, stem="cifar", imp=True), (T, B, 3, 8, 8), 10),
}

NO_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=NO_CUDA)]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list(NETWORKS))
def test_forward_backward(name, device):
    factory, shape, classes = NETWORKS[name]
    torch.manual_seed(0)
    model = factory()
    x = torch.rand(shape)
    model(x)  # dry run: materialises lazy neuron parameters (the IMP u0) before moving or optimising
    model.to(device)
    out = model(x.to(device))
    assert out.shape == (T, B, classes)
    assert out.device.type == device
    out.float().pow(2).sum().backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name


def _neurons(model, kind):
    return [m for m in model.modules() if type(m) is kind]


def test_mlp_defaults_follow_the_paper_baseline():
    shd = models.shd_mlp()
    assert [m.leak for m in _neurons(shd, LIF)] == ["learnable", "learnable"]
    torch.testing.assert_close(_neurons(shd, LIF)[0].beta, torch.tensor(0.5))
    nmnist = models.nmnist_mlp()
    assert {m.beta for m in _neurons(nmnist, LIF)} == {0.3}
    assert all(m.reset_mode == "hard" and m.v_reset == 0.0 for m in _neurons(nmnist, LIF))


@pytest.mark.parametrize("options,check", [
    (dict(leak="none"), lambda m: m.beta == 1.0),
    (dict(leak="complete"), lambda m: m.beta == 0.0),
    (dict(reset="none"), lambda m: m.reset_mode == "none"),
    (dict(beta=0.9, threshold=0.5), lambda m: m.beta == 0.9 and m.threshold == 0.5),
])
def test_mlp_variant_switches(options, check):
    model = models.mnist_mlp(**options)
    neurons = _neurons(model, LIF)
    assert len(neurons) == 2 and all(check(m) for m in neurons)


def test_mlp_recurrent_and_custom_neuron():
    model = models.ssc_mlp(recurrent=True)
    assert len(_neurons(model, RecurrentLIF)) == 1 and len(_neurons(model, LIF)) == 1
    assert len(_neurons(models.mnist_mlp(neuron=DALIF), DALIF)) == 2
    with pytest.raises(ValueError, match="recurrent"):
        models.mnist_mlp(neuron=DALIF, recurrent=True)


def test_conv_networks_neuron_switch():
    assert _neurons(models.resnet19(), DALIF) and not _neurons(models.resnet19(), LIF)
    assert not _neurons(models.resnet20(neuron=LIF, beta=0.25), DALIF)
    assert {m.beta for m in _neurons(models.resnet20(neuron=LIF, beta=0.25), LIF)} == {0.25}
    sew = models.sew_resnet18(10, imp=True)
    neurons = _neurons(sew, IF)
    assert neurons and all(m.imp and m.reset_mode == "soft" and m.surrogate.name == "triangle" for m in neurons)
    vgg = models.vgg16(neuron=functools.partial(LIF, leak="learnable", learnable_shape="channel"))
    assert all(m.leak == "learnable" for m in _neurons(vgg, LIF))


def test_network_layer_counts():
    def weight_layers(model):
        return sum(isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) for m in model.modules())

    shortcut_convs = lambda model: sum(  # noqa: E731
        isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())
    for factory, depth in ((models.resnet19, 19), (models.resnet20, 20), (models.vgg11, 9), (models.vgg16, 14),
                           (functools.partial(models.sew_resnet18, 10), 18),
                           (functools.partial(models.sew_resnet34, 10), 34)):
        model = factory()
        assert weight_layers(model) - shortcut_convs(model) == depth, factory
    # VGG-11 / VGG-16 count 8 / 13 convolutions + our single Linear head (9 / 14).


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match="700"):
        models.shd_mlp()(torch.rand(T, B, 100))
    with pytest.raises(ValueError, match=r"\[T, B, 3, H, W\]"):
        models.resnet19()(torch.rand(B, 3, 8, 8))
