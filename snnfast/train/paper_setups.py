"""The training setups of the IMP paper (Shen et al.) and the DA-LIF paper (Zhang et al.) for
``snnfast train``: their networks of snnfast.models, neurons, losses, optimizers and schedules.

Where each value comes from is said per setup (``source``) and in docs/training.md:
"paper" (the text), "authors' config" (the IMP authors' training configs in their
StephenTaylor1998/IMP-SNN repository, and the neuron code of AmazingLab/amazing-cls that those
configs use), or "choice" (what neither gives). What the setups do not reproduce:

- Mixup / CutMix and the authors' event-data augmentations (SpikFormer's policies, random
  crops of frames): snnfast's loaders have no such transforms (``notes`` says where they apply);
- the authors' VGG-11 for event data is 8 conv layers (64 | 128 | 256 x 2 | 512 x 4, three
  average poolings); these setups use snnfast's ``vgg11`` (configuration A, five poolings);
- the ImageNet runs of the IMP authors start from ANN ResNet weights (their ``--load``);
- warm-up and cosine step once per epoch (the authors' warm-ups step per iteration);
- mixed precision (their AmpOptimWrapper).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from .. import models
from ..nn import LIF
from .config import Setup

NETWORKS = {
    "vgg11": models.vgg11,
    "vgg16": models.vgg16,
    "resnet19": models.resnet19,
    "resnet20": models.resnet20,
    "sew_resnet18": models.sew_resnet18,
    "sew_resnet34": models.sew_resnet34,
}
OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("cosine",)


@dataclass(frozen=True)
class PaperSetup(Setup):
    """A Setup with what the deep networks of these two papers need besides the
    functional-roles fields: the network, the input's shape, the optimizer and the schedule.
    (input_size, hidden, lr_step and lr_gamma of Setup are unused here.)"""

    network: str = "vgg11"  # a key of NETWORKS
    network_options: dict = field(default_factory=dict)  # e.g. in_channels, stem
    input_shape: tuple = (3, 32, 32)  # [C, H, W] of one step
    neuron: str = "if"  # "if" (IMP paper) or "dalif" (DA-LIF paper)
    detach_reset: bool = False
    imp_init: tuple = (0.4, 0.6)  # the IMP's U(low, high) per neuron (authors' code)
    loss_options: dict = field(default_factory=dict)
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: int = 0
    warmup_start: float = 1e-4  # the warm-up's first lr, as a fraction of lr
    min_lr: float = 0.0
    grad_clip: float | None = None
    paper: str = ""  # the paper's result for this setup
    source: dict = field(default_factory=dict)  # field -> where its value comes from


# The IMP paper: VGG-11 on event data with IF neurons, IMP and TET-S (Table 2).
_IMP_VGG = dict(
    network="vgg11", neuron="if", reset="soft", threshold=1.0, beta=1.0, imp=True, loss="tets",
    loss_options={"epsilon": 0.01}, lr_step=1, lr_gamma=1.0, hidden=(),
)
_SGD_48 = dict(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4, epochs=200, batch_size=32,
               surrogate="atan", surrogate_width=1.0)
_ADAMW_128 = dict(optimizer="adamw", lr=1e-3, weight_decay=0.06, grad_clip=1.0, warmup_epochs=30,
                  epochs=200, batch_size=16, surrogate="sigmoid", surrogate_width=1.0, detach_reset=True)
_IMP_VGG_SOURCE = {
    "network": "paper (VGG-11); snnfast's vgg11 instead of the authors' 8-layer VGG (module docstring)",
    "neuron": "paper (IF, eqs. 1-3: soft reset, threshold 1); the authors' configs use LIF nodes (tau = 2)",
    "imp_init": "authors' code (U(0.4, 0.6) per neuron), excluded from weight decay (authors' config)",
    "loss": "paper (TET-S); label smoothing 0.01: authors' config",
}
_SGD_SOURCE = {"optimizer": "authors' config: SGD lr 0.1, momentum 0.9, weight decay 5e-4 (none on BN, biases, "
                            "IMP), cosine to 0 over 200 epochs, batch 32, ATan surrogate",
               "T, input_shape": "paper (Table 2)"}
_ADAMW_SOURCE = {"optimizer": "authors' config: AdamW lr 1e-3, weight decay 0.06 (none on BN, biases, IMP), "
                              "grad-norm clip 1.0, 30-epoch linear warm-up then cosine, 200 epochs, batch 16, "
                              "sigmoid surrogate, detach_reset",
                 "T, input_shape": "paper (Table 2)"}


def _imp_vgg(name, dataset, classes, size, T, schedule, source, paper, data=None):
    return PaperSetup(
        name=name, dataset=dataset, input_size=2 * size * size, num_classes=classes, T=T,
        input_shape=(2, size, size), network_options={"in_channels": 2},
        data={"size": size, "split_by": "number", **(data or {})}, paper=paper,
        source={**_IMP_VGG_SOURCE, **source},
        notes=f"IMP paper, Table 2: VGG-11, IF + IMP, TET-S, {size} x {size}, T = {T}. Not applied: the "
              "authors' augmentation (random crop and flip of frames at 48, SpikFormer's policies and "
              "Mixup/CutMix at 128).",
        **_IMP_VGG, **schedule,
    )


# The IMP paper: SEW-ResNet-18/34 with LTS on static images (Tables 1 and 3); --imp for IMP + LTS.
_IMP_SEW = dict(
    neuron="if", threshold=1.0, beta=1.0, imp=False, loss="lts", lr_step=1, lr_gamma=1.0, hidden=(),
    surrogate="atan", surrogate_width=1.0, optimizer="sgd", momentum=0.9, T=4,
)


def _imp_sew(name, depth, dataset, classes, shape, stem, reset, schedule, source, paper, data):
    return PaperSetup(
        name=name, dataset=dataset, input_size=math.prod(shape), num_classes=classes, input_shape=shape,
        network=f"sew_resnet{depth}", network_options={"stem": stem}, reset=reset, data=data, paper=paper,
        source={"network, T, loss": "paper (SEW-ResNet, T = 4, LTS; --imp for IMP + LTS)", **source},
        notes=f"IMP paper: SEW-ResNet-{depth} (ADD), IF neurons, LTS (add --imp for IMP + LTS, the "
              "IMP initialised U(0.4, 0.6) per neuron).",
        **_IMP_SEW, **schedule,
    )


# The DA-LIF paper: DA-LIF neurons (threshold 1, hard reset to 0, rectangle surrogate of width
# 1, alpha = tanh(alpha_raw), beta = tanh(beta_raw) per layer, raw parameters starting at 1),
# SGD lr 0.1 momentum 0.9 (section IV-A2).
_DALIF = dict(
    neuron="dalif", dalif=True, threshold=1.0, beta="learnable", reset="hard", loss="tet",
    surrogate="rectangle", surrogate_width=1.0, optimizer="sgd", lr=0.1, momentum=0.9,
    lr_step=1, lr_gamma=1.0, hidden=(),
)
_DALIF_SOURCE = {
    "neuron, threshold, surrogate, optimizer, lr, momentum": "paper (IV-A2, eqs. 9-11)",
    "schedule": "choice (cosine; the paper names no schedule)",
    "weight_decay": "choice (5e-4; the paper gives none), none on BN, biases and the decays",
    "loss": "choice (TET; the paper names no loss)",
    "batch_size": "choice (the paper gives none)",
}


def _dalif(name, network, dataset, classes, shape, T, epochs, batch_size, paper, data, weight_decay=5e-4,
           network_options=None, source=None):
    return PaperSetup(
        name=name, dataset=dataset, input_size=math.prod(shape), num_classes=classes, input_shape=shape,
        network=network, network_options=network_options or {}, T=T, epochs=epochs, batch_size=batch_size,
        weight_decay=weight_decay, data=data, paper=paper, source={**_DALIF_SOURCE, **(source or {})},
        notes=f"DA-LIF paper: {network}, DA-LIF neurons, T = {T}, {epochs} epochs.", **_DALIF,
    )


_CIFAR = {"encoding": "direct", "augment": True}
_IMAGENET = {"encoding": "direct", "augment": True}

PAPER_SETUPS = {s.name: s for s in (
    # --- IMP paper, event data (Table 2) ---
    _imp_vgg("imp_cifar10dvs_48_t10", "cifar10dvs", 10, 48, 10, _SGD_48, _SGD_SOURCE, "IMP 85.90, IMP + TET-S 87.10"),
    _imp_vgg("imp_cifar10dvs_48_t8", "cifar10dvs", 10, 48, 8, _SGD_48, _SGD_SOURCE, "IMP + TET-S 87.80"),
    _imp_vgg("imp_cifar10dvs_128_t16", "cifar10dvs", 10, 128, 16, dict(_ADAMW_128, min_lr=1e-6), _ADAMW_SOURCE,
             "IMP 86.30, IMP + TET-S 87.00"),
    _imp_vgg("imp_ncaltech101_48_t10", "ncaltech101", 101, 48, 10, _SGD_48, _SGD_SOURCE, "IMP 84.68, IMP + TET-S 85.01"),
    _imp_vgg("imp_ncaltech101_128_t16", "ncaltech101", 101, 128, 16, dict(_ADAMW_128, min_lr=1e-5), _ADAMW_SOURCE,
             "IMP 86.12, IMP + TET-S 87.86"),
    # --- IMP paper, static images (Tables 1 and 3) ---
    *(_imp_sew(f"imp_sew18_{name}", 18, name, classes, (3, 32, 32), "cifar", "soft",
               dict(lr=0.1, weight_decay=5e-4, epochs=epochs, batch_size=256, warmup_epochs=5, min_lr=1e-6),
               {"schedule": "authors' config: 5-epoch warm-up, cosine to 1e-6, batch 256, 300 epochs (CIFAR10; "
                            "200 for CIFAR100), IF with soft reset and ATan",
                "optimizer": "choice: SGD lr 0.1 momentum 0.9 weight decay 5e-4 (the authors' CIFAR configs use "
                             "LAMB, lr 0.005-0.008, which torch does not have)",
                "stem": "choice: 3x3 conv stride 1 for 32 x 32 images (the authors' SEWResNetCifar)"},
               paper, _CIFAR) for name, classes, epochs, paper in (
        ("cifar10", 10, 300, "SDT 94.56, TET 94.33 (Table 1; no LTS row for CIFAR)"),
        ("cifar100", 100, 200, "SDT 76.58, TET 76.40 (Table 1; no LTS row for CIFAR)"))),
    *(_imp_sew(f"imp_sew{depth}_imagenet", depth, "imagenet", 1000, (3, 224, 224), "imagenet", "hard",
               dict(lr=0.05, weight_decay=0.0, epochs=320, batch_size=batch),
               {"optimizer, schedule": "authors' ImageNet code (in1k/LTS/run.sh): SGD lr 0.05 momentum 0.9, no "
                                       f"weight decay, cosine over 320 epochs, batch {batch} (4 GPUs), T = 4",
                "reset": "authors' code (SpikingJelly's IFNode: hard reset to 0), ATan surrogate",
                "init": "not reproduced: the authors start from ANN ResNet weights"},
               paper, _IMAGENET) for depth, batch, paper in (
        (18, 768, "LTS 64.33, IMP + LTS 65.38 (Table 3)"),
        (34, 512, "LTS 68.10, IMP + LTS 68.90 (Table 3)"))),
    # --- DA-LIF paper (Tables I and II) ---
    _dalif("dalif_resnet19_cifar10", "resnet19", "cifar10", 10, (3, 32, 32), 4, 1000, 128, "96.72 +- 0.10 (T = 4)",
           _CIFAR),
    _dalif("dalif_resnet19_cifar100", "resnet19", "cifar100", 100, (3, 32, 32), 2, 1000, 128, "80.59 +- 0.08 (T = 2)",
           _CIFAR),
    _dalif("dalif_resnet20_cifar10", "resnet20", "cifar10", 10, (3, 32, 32), 4, 1000, 128, "94.16 +- 0.08 (T = 4)",
           _CIFAR),
    _dalif("dalif_resnet20_cifar100", "resnet20", "cifar100", 100, (3, 32, 32), 2, 1000, 128,
           "72.07 +- 0.10 (T = 2; the ablation's network)", _CIFAR),
    _dalif("dalif_resnet34_imagenet", "sew_resnet34", "imagenet", 1000, (3, 224, 224), 4, 320, 256,
           "70.58 +- 0.20 (ResNet-34, T = 4)", _IMAGENET, weight_decay=1e-4,
           network_options={"stem": "imagenet"},
           source={"network": "choice: the paper's ResNet-34 is a plain spiking ResNet; snnfast has none with an "
                              "ImageNet stem, so this is SEW-ResNet-34 (ADD shortcuts) with DA-LIF neurons",
                   "weight_decay": "choice (1e-4, the usual for ImageNet)"}),
    _dalif("dalif_vgg16_cifar10dvs", "vgg16", "cifar10dvs", 10, (2, 48, 48), 16, 200, 32, "82.42 +- 0.20 (VGG-16, T = 16)",
           {"size": 48, "split_by": "number"}, network_options={"in_channels": 2},
           source={"epochs": "paper (200 for 'DVS CIFAR-10'; it also lists CIFAR10-DVS under 1000)",
                   "input_shape": "choice: 48 x 48 (the paper gives no size)"}),
    _dalif("dalif_vgg11_dvs_gesture", "vgg11", "dvs_gesture", 11, (2, 64, 64), 16, 200, 32, "98.61 +- 0.20 (VGG-11, T = 16)",
           {"size": 64, "split_by": "number"}, network_options={"in_channels": 2},
           source={"epochs": "choice (200, as for CIFAR10-DVS; the paper gives none)",
                   "input_shape": "choice: 64 x 64 (the paper gives no size)"}),
)}


# ------------------------------------------------------------------------ networks and losses

def neuron_options(setup: PaperSetup) -> dict:
    """The network's neuron keyword arguments: the functional-roles options of
    builders.neuron_options (threshold, reset, surrogate, IMP, leak or DA-LIF), plus the neuron class
    (an IF is LIF with leak "none", which also takes --leak) and detach_reset."""
    from .builders import neuron_options as common

    if setup.recurrent:
        raise ValueError(f"--recurrent is not available for {setup.name} (a convolutional network)")
    options = common(setup)
    options.setdefault("neuron", LIF)
    options["detach_reset"] = setup.detach_reset
    return options


def build_model(setup: PaperSetup) -> nn.Module:
    """The setup's network with its neurons; with the IMP, its u0 created by one dry forward
    (eval mode, so BatchNorm's statistics are untouched) and drawn from U(imp_init)."""
    try:
        network = NETWORKS[setup.network]
    except KeyError:
        raise ValueError(f"unknown network {setup.network!r}; known: {', '.join(NETWORKS)}") from None
    model = network(setup.num_classes, **setup.network_options, **neuron_options(setup))
    if setup.imp:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, 1, *setup.input_shape))
            for layer in model.modules():
                if getattr(layer, "imp", False):
                    layer.u0.uniform_(*setup.imp_init)
        model.train()
    return model


def build_loss(setup: PaperSetup, losses: dict) -> nn.Module:
    try:
        return losses[setup.loss](**setup.loss_options)
    except KeyError:
        raise ValueError(f"unknown loss {setup.loss!r}; known: {', '.join(losses)}") from None


# ------------------------------------------------------------------------ optimizers and schedules

def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on the weights of conv and Linear layers only: not on BatchNorm, biases,
    the IMP (u0) or the neurons' decays and thresholds (the authors' paramwise config)."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                continue
            weights = name == "weight" and isinstance(module, (nn.Conv2d, nn.Linear))
            (decay if weights else no_decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(setup: PaperSetup, model: nn.Module) -> torch.optim.Optimizer:
    groups = parameter_groups(model, setup.weight_decay)
    if setup.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=setup.lr, momentum=setup.momentum)
    elif setup.optimizer == "adamw":
        optimizer = torch.optim.AdamW(groups, lr=setup.lr, betas=(0.9, 0.999), eps=1e-8)
    else:
        raise ValueError(f"{setup.name}: optimizer must be one of {OPTIMIZERS}, got {setup.optimizer!r}")
    if setup.grad_clip is not None:
        parameters = [p for group in groups for p in group["params"]]

        def clip(*_):  # before every step (under DDP the gradients are reduced by then)
            torch.nn.utils.clip_grad_norm_(parameters, setup.grad_clip)

        optimizer.register_step_pre_hook(clip)
    return optimizer


class WarmupCosine:
    """The lr factor of epoch e: linear from ``start`` to 1 over ``warmup`` epochs, then a
    cosine from 1 to ``floor`` (min_lr / lr) at the last epoch. A class, not a lambda, so that
    LambdaLR's state_dict keeps it."""

    def __init__(self, epochs: int, warmup: int, start: float, floor: float):
        self.epochs, self.warmup, self.start, self.floor = epochs, warmup, start, floor

    def __call__(self, epoch: int) -> float:
        if epoch < self.warmup:
            return self.start + (1 - self.start) * epoch / self.warmup
        span = max(1, self.epochs - self.warmup)
        progress = min(1.0, (epoch - self.warmup) / span)
        return self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(setup: PaperSetup, optimizer: torch.optim.Optimizer):
    if setup.schedule not in SCHEDULES:
        raise ValueError(f"{setup.name}: schedule must be one of {SCHEDULES}, got {setup.schedule!r}")
    factor = WarmupCosine(setup.epochs, setup.warmup_epochs, setup.warmup_start, setup.min_lr / setup.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def trainer_options(setup: Setup) -> dict:
    """The Trainer's optimizer and scheduler factories for ``setup``: the setup's own for the
    papers' setups, none (Adam + StepLR) for the others."""
    if not isinstance(setup, PaperSetup):
        return {}
    return {"optimizer": partial(build_optimizer, setup), "scheduler": partial(build_scheduler, setup)}
