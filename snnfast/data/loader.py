"""Batching: time-major collate functions and a loader that is reproducible per epoch and
sharded under torch.distributed."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..utils.seeding import epoch_seed


def time_major_collate(batch):
    """``[(x [T_i, *F], label)]`` -> ``(x [T, B, *F] float32, labels [B] int64)``.

    Sequences of different lengths are zero-padded at the end to the longest one.
    """
    xs, labels = zip(*batch)
    T = max(x.shape[0] for x in xs)
    out = xs[0].new_zeros((T, len(xs), *xs[0].shape[1:]), dtype=torch.float32)
    for b, x in enumerate(xs):
        out[: x.shape[0], b] = x
    return out, torch.as_tensor(labels, dtype=torch.int64)


class StaticCollate:
    """``[(image [*F], label)]`` -> ``(x [T, B, *F], labels [B])`` for static images.

    ``encoding="direct"`` repeats the image at every step (the input current of the first
    layer); ``"poisson"`` draws spikes with probability equal to the pixel value (images in
    [0, 1]) from torch's global generator.
    """

    def __init__(self, T: int, encoding: str = "direct"):
        if int(T) < 1:
            raise ValueError(f"T must be positive, got {T}")
        if encoding not in ("direct", "poisson"):
            raise ValueError(f"encoding must be 'direct' or 'poisson', got {encoding!r}")
        self.T, self.encoding = int(T), encoding

    def __call__(self, batch):
        images, labels = zip(*batch)
        x = torch.stack(images).float()
        labels = torch.as_tensor(labels, dtype=torch.int64)
        x = x.unsqueeze(0).expand(self.T, *x.shape)
        if self.encoding == "poisson":
            x = (torch.rand(x.shape) < x).float()
        return x.contiguous(), labels


class ShardSampler(Sampler):
    """Evaluation sampler: rank r takes indices r, r + W, ... in order, without the padding a
    DistributedSampler adds, so every sample is counted exactly once over the ranks."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.length, self.rank, self.world_size = length, rank, world_size

    def __iter__(self):
        return iter(range(self.rank, self.length, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.length, self.world_size))


class Loader:
    """A DataLoader whose epoch e is a function of (seed, e): ``set_epoch`` reshuffles with
    seed + e (through a DistributedSampler, also with one process) and reseeds the generator
    from which the workers' seeds are drawn."""

    def __init__(self, loader: DataLoader, seed: int):
        self.loader, self.seed = loader, seed

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.loader.sampler, "set_epoch"):
            self.loader.sampler.set_epoch(epoch)
        self.loader.generator.manual_seed(epoch_seed(self.seed, epoch))

    def __iter__(self):
        return iter(self.loader)

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def dataset(self):
        return self.loader.dataset


def make_loader(dataset, batch_size: int, *, train: bool, collate_fn=time_major_collate,
                seed: int = 0, num_workers: int = 0, drop_last: bool | None = None,
                pin_memory: bool = False) -> Loader:
    """A loader over ``dataset`` with ``batch_size`` samples per step over all processes.

    Under torch.distributed each of the W ranks loads ``batch_size // W`` samples: its shard
    (shuffled with seed + epoch for training, in order without padding for evaluation).
    Training drops the last incomplete batch unless ``drop_last=False``.
    """
    rank, world_size = 0, 1
    if dist.is_available() and dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {world_size} processes")
    if train:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                     seed=seed, drop_last=False)
    else:
        sampler = ShardSampler(len(dataset), rank, world_size)
    generator = torch.Generator().manual_seed(epoch_seed(seed, 0))
    loader = DataLoader(
        dataset, batch_size=batch_size // world_size, sampler=sampler, collate_fn=collate_fn,
        num_workers=num_workers, drop_last=train if drop_last is None else drop_last,
        generator=generator, pin_memory=pin_memory, persistent_workers=False,
    )
    return Loader(loader, seed)
