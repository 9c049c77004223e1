"""Plain convolutional networks: the functional-roles paper's CIFAR10 network and VGG-11/16.

All take a sequence [T, B, C, H, W] (repeat a static image T times for direct encoding) and
return per-step outputs [T, B, classes].
"""
from __future__ import annotations

from torch import nn

from .. import surrogate as surrogates
from ..nn import DALIF, LIF, TimeDistributed
from ._blocks import check_input, conv_bn, neuron_factory

__all__ = ["CIFAR10ConvNet", "cifar10_convnet", "VGG", "vgg11", "vgg16"]


class CIFAR10ConvNet(nn.Module):
    """The functional-roles paper's CIFAR10 network (its Table 4 row, "Input(3072)-...-Output").

    The layer list of that row is lost in our copy of the paper, so this is a choice: CIFARNet of
    Wu et al. 2019 (same group), 128C3-256C3-AP2-512C3-AP2-1024C3-512C3-1024FC-512FC-10, with
    BatchNorm after every convolution and neurons after every layer, the 10 outputs included
    (as the paper's MLPs; spiking_output=False returns the last Linear's currents).
    Neuron defaults: the paper's spatial-task baseline (beta = 0.3 fixed, hard reset,
    rectangle surrogate of width 0.25; see snnfast.models.mlp).
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, input_size: int = 32,
                 spiking_output: bool = True, neuron=None, **neuron_kwargs):
        super().__init__()
        if input_size % 4:
            raise ValueError(f"input_size must be a multiple of 4 (two 2x2 poolings), got {input_size}")
        make_neuron = neuron_factory(neuron, neuron_kwargs, LIF,
                                     dict(beta=0.3, surrogate=surrogates.Rectangle(0.25)))
        self.in_channels = in_channels
        pool = lambda: TimeDistributed(nn.AvgPool2d(2))  # noqa: E731
        self.features = nn.Sequential(
            conv_bn(in_channels, 128, 3, padding=1), make_neuron(),
            conv_bn(128, 256, 3, padding=1), make_neuron(), pool(),
            conv_bn(256, 512, 3, padding=1), make_neuron(), pool(),
            conv_bn(512, 1024, 3, padding=1), make_neuron(),
            conv_bn(1024, 512, 3, padding=1), make_neuron(),
        )
        side = input_size // 4
        head = [nn.Linear(512 * side * side, 1024), make_neuron(), nn.Linear(1024, 512), make_neuron(),
                nn.Linear(512, num_classes)]
        if spiking_output:
            head.append(make_neuron())
        self.classifier = nn.Sequential(*head)

    def forward(self, x):
        check_input(x, self.in_channels, type(self).__name__)
        return self.classifier(self.features(x).flatten(2))


def cifar10_convnet(**options) -> CIFAR10ConvNet:
    return CIFAR10ConvNet(**options)


_VGG_LAYERS = {
    11: [64, "P", 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P"],
    16: [64, 64, "P", 128, 128, "P", 256, 256, 256, "P", 512, 512, 512, "P", 512, 512, 512, "P"],
}


class VGG(nn.Module):
    """Spiking VGG: 3x3 conv + BatchNorm + neuron layers (configurations A and D of Simonyan
    and Zisserman), 2x2 average pooling, then global average pooling and one Linear classifier
    returning per-step logits [T, B, classes].

    DA-LIF uses VGG-16 (CIFAR) and VGG-11 (DVS128 Gesture) without describing their layers;
    average rather than max pooling and the single Linear head (instead of three) are our
    choices, common in directly trained SNNs. The input needs H, W >= 32 (five poolings).
    Default neuron: DALIF (as in the DA-LIF paper); neuron= and keyword arguments switch it.
    """

    def __init__(self, depth: int, num_classes: int = 10, *, in_channels: int = 3, neuron=None, **neuron_kwargs):
        super().__init__()
        if depth not in _VGG_LAYERS:
            raise ValueError(f"depth must be one of {sorted(_VGG_LAYERS)}, got {depth}")
        make_neuron = neuron_factory(neuron, neuron_kwargs, DALIF)
        self.in_channels = in_channels
        layers, channels = [], in_channels
        for item in _VGG_LAYERS[depth]:
            if item == "P":
                layers.append(TimeDistributed(nn.AvgPool2d(2)))
            else:
                layers += [conv_bn(channels, item, 3, padding=1), make_neuron()]
                channels = item
        self.features = nn.Sequential(*layers)
        self.pool = TimeDistributed(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        check_input(x, self.in_channels, type(self).__name__)
        return self.classifier(self.pool(self.features(x)))


def vgg11(num_classes: int = 11, **options) -> VGG:
    """VGG-11 (DA-LIF's DVS128 Gesture network: pass in_channels=2 for event frames)."""
    return VGG(11, num_classes, **options)


def vgg16(num_classes: int = 10, **options) -> VGG:
    """VGG-16 (DA-LIF's CIFAR network)."""
    return VGG(16, num_classes, **options)
