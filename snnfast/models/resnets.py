"""Residual networks: ResNet-19 and ResNet-20 (the DA-LIF paper's CIFAR networks) and
SEW-ResNet-18/34 (Fang et al., used by the IMP paper).

All take [T, B, C, H, W] and return per-step logits [T, B, classes].
"""
from __future__ import annotations

from torch import nn

from ..nn import DALIF, IF, TimeDistributed
from ._blocks import check_input, conv_bn, neuron_factory

__all__ = ["SpikingResNet", "resnet19", "resnet20", "SEWResNet", "sew_resnet18", "sew_resnet34"]


class BasicBlock(nn.Module):
    """Spiking basic block: neuron(BN(conv(neuron(BN(conv(x))))) + shortcut(x)); the sum of
    currents is what the last neuron integrates."""

    def __init__(self, in_channels: int, channels: int, stride: int, make_neuron):
        super().__init__()
        self.conv1 = conv_bn(in_channels, channels, 3, stride, 1)
        self.neuron1 = make_neuron()
        self.conv2 = conv_bn(channels, channels, 3, 1, 1)
        self.shortcut = (conv_bn(in_channels, channels, 1, stride) if stride != 1 or in_channels != channels
                         else nn.Identity())
        self.neuron2 = make_neuron()

    def forward(self, x):
        return self.neuron2(self.conv2(self.neuron1(self.conv1(x))) + self.shortcut(x))


class SpikingResNet(nn.Module):
    """Stem of 3x3 conv + BN + neuron layers, optional 2x2 average pooling, stages of basic
    blocks (the first block of a stage strides), global average pooling and a head.

    Args:
        stem: channels of the stem's conv layers.
        stem_pool: 2x2 average pooling after the stem.
        stages: (channels, blocks, stride) per stage.
        hidden: None for one Linear head; else Linear(hidden) + neuron + Linear(classes).
    """

    def __init__(self, stem, stages, num_classes: int = 10, *, in_channels: int = 3, stem_pool: bool = False,
                 hidden: int | None = None, neuron=None, **neuron_kwargs):
        super().__init__()
        make_neuron = neuron_factory(neuron, neuron_kwargs, DALIF)
        self.in_channels = in_channels
        layers, channels = [], in_channels
        for out in stem:
            layers += [conv_bn(channels, out, 3, 1, 1), make_neuron()]
            channels = out
        if stem_pool:
            layers.append(TimeDistributed(nn.AvgPool2d(2)))
        self.stem = nn.Sequential(*layers)
        blocks = []
        for out, count, stride in stages:
            for index in range(count):
                blocks.append(BasicBlock(channels, out, stride if index == 0 else 1, make_neuron))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = TimeDistributed(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        if hidden is None:
            self.head = nn.Linear(channels, num_classes)
        else:
            self.head = nn.Sequential(nn.Linear(channels, hidden), make_neuron(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        check_input(x, self.in_channels, type(self).__name__)
        return self.head(self.pool(self.blocks(self.stem(x))))


def resnet19(num_classes: int = 10, **options) -> SpikingResNet:
    """ResNet-19 (Zheng et al., tdBN; DA-LIF's CIFAR network): 3x3 conv 128, then basic blocks
    128 x3, 256 x3 (stride 2), 512 x2 (stride 2), average pooling, FC 256 + neuron, FC classes:
    1 + 16 + 2 = 19 layers. BatchNorm is plain BatchNorm2d over time and batch (not tdBN's
    threshold-scaled version). Default neuron: DALIF."""
    return SpikingResNet([128], [(128, 3, 1), (256, 3, 2), (512, 2, 2)], num_classes, hidden=256, **options)


def resnet20(num_classes: int = 10, **options) -> SpikingResNet:
    """ResNet-20 as in Diet-SNN and MPBN (the baselines DA-LIF compares with): a stem of three
    3x3 conv 64 layers and 2x2 average pooling, basic blocks 64 x2, 128 x2, 256 x2, 512 x2
    (strides 1, 2, 2, 2), average pooling, FC classes: 3 + 16 + 1 = 20 layers. Shortcuts that
    change shape are 1x1 conv + BN. Default neuron: DALIF."""
    return SpikingResNet([64, 64, 64], [(64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)], num_classes,
                         stem_pool=True, **options)


_CONNECT = {
    "add": lambda block, identity: block + identity,
    "and": lambda block, identity: block * identity,
    "iand": lambda block, identity: (1 - block) * identity,
}


class SEWBlock(nn.Module):
    """Spike-element-wise block (Fang et al. 2021): out = g(SN(BN(conv(SN(BN(conv(x)))))), S)
    with S = x, or SN(BN(conv1x1(x))) when the shape changes; g is ADD, AND or IAND."""

    def __init__(self, in_channels: int, channels: int, stride: int, make_neuron, connect: str):
        super().__init__()
        self.residual = nn.Sequential(conv_bn(in_channels, channels, 3, stride, 1), make_neuron(),
                                      conv_bn(channels, channels, 3, 1, 1), make_neuron())
        self.shortcut = (nn.Sequential(conv_bn(in_channels, channels, 1, stride), make_neuron())
                         if stride != 1 or in_channels != channels else nn.Identity())
        self.connect = connect

    def forward(self, x):
        return _CONNECT[self.connect](self.residual(x), self.shortcut(x))


class SEWResNet(nn.Module):
    """SEW-ResNet with basic blocks (widths 64, 128, 256, 512).

    Args:
        layers: blocks per stage ([2, 2, 2, 2] for 18, [3, 4, 6, 3] for 34).
        connect: the element-wise function g: "add" (default, the SEW paper's best on
            ImageNet), "and" or "iand".
        stem: "imagenet" (7x7 conv stride 2 + BN + neuron + 3x3 max pooling stride 2, as the SEW
            paper) or "cifar" (3x3 conv stride 1 + BN + neuron, no pooling, for 32x32 inputs;
            the IMP paper also trains SEW-ResNet-18 on CIFAR without describing its stem).
        neuron: default IF with soft reset (the IMP paper's IF neuron, s[t+1] = h[t] - o[t]) and
            the triangle surrogate (its max(0, 1 - |h - V_th|)); add imp=True for the IMP.
    """

    def __init__(self, layers, num_classes: int = 1000, *, in_channels: int = 3, connect: str = "add",
                 stem: str = "imagenet", neuron=None, **neuron_kwargs):
        super().__init__()
        if connect not in _CONNECT:
            raise ValueError(f"connect must be one of {sorted(_CONNECT)}, got {connect!r}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        make_neuron = neuron_factory(neuron, neuron_kwargs, IF, dict(reset="soft", surrogate="triangle"))
        self.in_channels = in_channels
        if stem == "imagenet":
            self.stem = nn.Sequential(conv_bn(in_channels, 64, 7, 2, 3), make_neuron(),
                                      TimeDistributed(nn.MaxPool2d(3, 2, 1)))
        else:
            self.stem = nn.Sequential(conv_bn(in_channels, 64, 3, 1, 1), make_neuron())
        blocks, channels = [], 64
        for stage, count in enumerate(layers):
            out = 64 * 2 ** stage
            for index in range(count):
                stride = 2 if index == 0 and stage > 0 else 1
                blocks.append(SEWBlock(channels, out, stride, make_neuron, connect))
                channels = out
        self.blocks = nn.Sequential(*blocks)
        self.pool = TimeDistributed(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        check_input(x, self.in_channels, type(self).__name__)
        return self.head(self.pool(self.blocks(self.stem(x))))


def sew_resnet18(num_classes: int = 1000, **options) -> SEWResNet:
    return SEWResNet([2, 2, 2, 2], num_classes, **options)


def sew_resnet34(num_classes: int = 1000, **options) -> SEWResNet:
    return SEWResNet([3, 4, 6, 3], num_classes, **options)
