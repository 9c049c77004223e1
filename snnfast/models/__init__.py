"""The papers' networks, each with a switch for its neuron (neuron= and keyword arguments).

- functional-roles paper (Yin et al., Table 4): xor_mlp, shd_mlp, ssc_mlp, nmnist_mlp, dvs_gesture_mlp,
  mnist_mlp (SpikingMLP) and cifar10_convnet;
- DA-LIF paper: resnet19, resnet20, vgg11, vgg16 (default neuron DALIF);
- IMP paper: sew_resnet18, sew_resnet34 (default neuron IF with soft reset).

Every network maps [T, B, ...] to [T, B, classes]; see each docstring for the choices the
papers leave open.
"""
from .convnets import VGG, CIFAR10ConvNet, cifar10_convnet, vgg11, vgg16
from .mlp import SpikingMLP, dvs_gesture_mlp, xor_mlp, mnist_mlp, nmnist_mlp, shd_mlp, ssc_mlp
from .resnets import SEWResNet, SpikingResNet, resnet19, resnet20, sew_resnet18, sew_resnet34

__all__ = [
    "SpikingMLP", "xor_mlp", "shd_mlp", "ssc_mlp", "nmnist_mlp", "dvs_gesture_mlp", "mnist_mlp",
    "CIFAR10ConvNet", "cifar10_convnet", "VGG", "vgg11", "vgg16",
    "SpikingResNet", "resnet19", "resnet20", "SEWResNet", "sew_resnet18", "sew_resnet34",
]
