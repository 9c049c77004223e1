"""Seeds: one for every (stream, epoch) pair, and one call that seeds every generator a
training run draws from (torch, numpy, random)."""
from __future__ import annotations

import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """A 63-bit seed for epoch ``epoch`` of stream ``seed`` (independent streams per pair)."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)[0] >> 1)


def seed_everything(seed: int) -> None:
    """Seeds torch (every device), numpy's global generator and Python's random."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
