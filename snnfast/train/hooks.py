"""Where the networks and losses plug into ``python -m snnfast.train``.

``build_model`` and ``build_loss`` are the two seams left for snnfast.nn / snnfast.losses /
snnfast.models: the CLI calls them through this module (``hooks.build_model(...)``), so they
can be replaced without touching the loop. Everything else (data, configs, the Trainer,
checkpoints, DDP) is wired already.
"""
from __future__ import annotations

import argparse

from torch import nn

from .config import Setup


def build_model(setup: Setup, args: argparse.Namespace) -> nn.Module:
    """The network of ``setup``: Table 4 sizes (``input_size``, ``hidden``, ``num_classes``),
    the neuron (``beta``: a float or "learnable"; ``threshold``, ``surrogate`` with
    ``surrogate_width``, ``reset``) and the variant switches (``recurrent``, ``imp``,
    ``dalif``); the CLI flags are already applied to ``setup``. ``args`` is the parsed command
    line, for anything else. Input ``[T, B, *F]``; output ``[T, B, num_classes]`` (or
    ``[B, num_classes]``)."""
    raise NotImplementedError(
        "snnfast.train.hooks.build_model is not wired to snnfast.nn / snnfast.models yet"
    )


def build_loss(setup: Setup, args: argparse.Namespace):
    """``loss(output, labels) -> scalar`` for ``setup.loss`` (sdt, tet, tets, lts). For the
    XOR setup the loss counts only ``snnfast.data.xor.READOUT_STEPS``."""
    raise NotImplementedError(
        "snnfast.train.hooks.build_loss is not wired to snnfast.losses yet"
    )
