"""The delayed spiking XOR task (DH-SNN, Zheng et al., Nature Communications 2024), generated on
the fly.

A sample is 200 steps of 20 input channels. Steps 0-9 carry a first pattern and steps 190-199 a
second: a pattern fires every channel as Bernoulli spikes at rate 0.2 (bit 0) or 0.6 (bit 1),
one rate per sample and pattern. Bernoulli noise at rate 0.01 on every channel at every step is
OR-ed in (so a pattern step spikes with probability 1 - (1 - rate)(1 - 0.01)). The label is
the XOR of the two bits.

Details the papers leave open, taken from the DH-SNN code (delayed_xor/delayed_xor_snn.py):
- both bits are drawn uniformly, independently for every sample;
- the second pattern always sits at the very end (their ``test_time = 1``: one position);
- the noise covers the pattern steps too and is OR-ed with them, never added;
- the loss and the accuracy count the readout at steps 191-199 (their ``i > 200 - 10``):
  ``READOUT_STEPS`` below.
Our own choice: the data of epoch e comes from a generator seeded by (seed, e), so an epoch
is the same whether it is run straight or after a resume, and on any number of processes
(each rank takes its slice of the same global batch).
"""
from __future__ import annotations

import torch

from ..utils.seeding import epoch_seed

CHANNELS = 20
STEPS = 200
PATTERN_STEPS = 10
SECOND_PATTERN_START = STEPS - PATTERN_STEPS  # 190
RATES = (0.2, 0.6)
NOISE_RATE = 0.01
# Steps whose readout the loss and the accuracy use (DH-SNN: i > 190).
READOUT_STEPS = slice(SECOND_PATTERN_START + 1, STEPS)


def generate(batch_size: int, generator: torch.Generator, device="cpu"):
    """One batch: spikes ``[200, B, 20]`` (float32, 0/1) and labels ``[B]`` (int64)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    rates = torch.tensor(RATES)
    shape = (STEPS, batch_size, CHANNELS)
    first_bit = torch.randint(0, 2, (batch_size,), generator=generator)
    second_bit = torch.randint(0, 2, (batch_size,), generator=generator)
    spikes = torch.rand(shape, generator=generator) < NOISE_RATE
    for bits, start in ((first_bit, 0), (second_bit, SECOND_PATTERN_START)):
        rate = rates[bits].view(1, batch_size, 1)
        pattern = torch.rand((PATTERN_STEPS, batch_size, CHANNELS), generator=generator) < rate
        spikes[start:start + PATTERN_STEPS] |= pattern
    labels = first_bit ^ second_bit
    return spikes.to(device=device, dtype=torch.float32), labels.to(device)


class DelayedXOR:
    """An epoch of ``batches`` batches of ``batch_size`` samples, time-major.

    Iterating yields ``(spikes [200, b, 20], labels [b])``; under torch.distributed each rank
    gets its slice of every global batch (b = batch_size / world size). Call ``set_epoch``
    before each epoch, like a DistributedSampler.
    """

    def __init__(self, batch_size=500, batches=100, seed=0, *, rank=None, world_size=None):
        self.batch_size, self.batches, self.seed = int(batch_size), int(batches), int(seed)
        if rank is None or world_size is None:
            rank, world_size = _dist_rank_world()
        if self.batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.batches

    def __iter__(self):
        generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
        for _ in range(self.batches):
            spikes, labels = generate(self.batch_size, generator)
            yield spikes[:, self.rank::self.world_size], labels[self.rank::self.world_size]


def _dist_rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def train_and_test(batch_size: int, batches: int, seed: int) -> tuple[DelayedXOR, DelayedXOR]:
    """A training epoch of ``batches`` batches from stream ``seed``, and a test set a tenth
    its size (at least one batch) from a stream of its own (``seed + 1``)."""
    return (DelayedXOR(batch_size, batches, seed=seed),
            DelayedXOR(batch_size, max(batches // 10, 1), seed=seed + 1))
