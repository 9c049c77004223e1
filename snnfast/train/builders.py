"""Where the networks and losses plug into ``python -m snnfast.train``: a setup (Tables 4
and 5, with the CLI's variant flags applied) becomes a network of snnfast.models and a loss of
snnfast.losses."""
from __future__ import annotations

import argparse

import torch
from torch import nn

from .. import losses, models
from .. import surrogate as surrogates
from ..data import xor
from ..nn import DALIF
from . import paper_setups
from .config import Setup

NETWORKS = {
    "xor": models.xor_mlp,
    "shd": models.shd_mlp,
    "ssc": models.ssc_mlp,
    "nmnist": models.nmnist_mlp,
    "dvs_gesture": models.dvs_gesture_mlp,
    "mnist": models.mnist_mlp,
    "cifar10": models.cifar10_convnet,
}
LOSSES = {"sdt": losses.SDT, "tet": losses.TET, "tets": losses.TETS, "lts": losses.LTS}


def surrogate(setup: Setup) -> surrogates.Surrogate:
    """The setup's surrogate; Table 5's "surrogate gradient width" is the width of a
    rectangle or triangle (sigmoid and atan keep their own sharpness)."""
    chosen = surrogates.get(setup.surrogate)
    return type(chosen)(setup.surrogate_width) if hasattr(chosen, "width") else chosen


def neuron_options(setup: Setup) -> dict:
    """The keyword arguments of the setup's network for its neuron and variant."""
    options = dict(threshold=setup.threshold, reset=setup.reset,
                   surrogate=surrogate(setup))
    if setup.imp:
        options["imp"] = True
    if setup.dalif:
        if setup.recurrent:
            raise ValueError("--dalif and --recurrent cannot be combined: recurrent layers are LIF")
        # DA-LIF learns its own decays; the leak setting does not apply.
        return dict(options, neuron=DALIF)
    if setup.detach_recurrent and not setup.recurrent:
        raise ValueError("--detach-recurrent needs --recurrent (it cuts the gradient through the recurrent spikes)")
    if setup.recurrent:
        if setup.dataset == "cifar10":
            raise ValueError("--recurrent is not available for cifar10 (a convolutional network, "
                             "as in the paper)")
        options["recurrent"] = True
        if setup.detach_recurrent:
            options["detach_recurrent"] = True
    beta = setup.beta
    if beta == "learnable":
        options["leak"] = "learnable"
    elif float(beta) == 1.0:
        options["leak"] = "none"
    elif float(beta) == 0.0:
        options["leak"] = "complete"
    else:
        options.update(leak="normal", beta=float(beta))
    return options


def build_model(setup: Setup, args: argparse.Namespace | None = None) -> nn.Module:
    """The network of ``setup`` (Table 4) with its neuron (Table 5 and the variant flags).
    Input ``[T, B, *F]``; output ``[T, B, num_classes]``."""
    if isinstance(setup, paper_setups.PaperSetup):
        return paper_setups.build_model(setup)
    try:
        network = NETWORKS[setup.dataset]
    except KeyError:
        raise ValueError(f"no network for dataset {setup.dataset!r}; known: {', '.join(NETWORKS)}") from None
    return network(**neuron_options(setup))


def build_loss(setup: Setup, args: argparse.Namespace | None = None):
    """``loss(output, labels) -> scalar`` for ``setup.loss`` (sdt, tet, tets, lts). For the
    XOR setup the loss counts only ``snnfast.data.xor.READOUT_STEPS``."""
    if isinstance(setup, paper_setups.PaperSetup):
        return paper_setups.build_loss(setup, LOSSES)
    try:
        loss = LOSSES[setup.loss]()
    except KeyError:
        raise ValueError(f"unknown loss {setup.loss!r}; known: {', '.join(LOSSES)}") from None
    if setup.dataset == "xor":
        return ReadoutStepsLoss(loss, xor.READOUT_STEPS)
    return loss


class ReadoutStepsLoss(nn.Module):
    """``loss`` over the steps ``steps`` of a ``[T, B, C]`` output only."""

    def __init__(self, loss: nn.Module, steps: slice):
        super().__init__()
        self.loss, self.steps = loss, steps

    def forward(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.loss(output[self.steps], labels)
