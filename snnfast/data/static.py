"""MNIST and CIFAR10 from their original files, without torchvision.

A sample is ``(image, label)`` with image a float32 ``[C, H, W]`` tensor; ``StaticCollate``
turns a batch into ``[T, B, C, H, W]`` (the image repeated, or Poisson spikes).
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .neuromorphic import DatasetNotFoundError

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_MNIST_URL = "http://yann.lecun.com/exdb/mnist/ (or any mirror of the four idx files)"
_CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
# Per-channel mean and standard deviation of the CIFAR10 training images.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


def _no_download(name: str) -> None:
    raise DatasetNotFoundError(
        f"{name} is read from its original files only; download=True is not available for it "
        "(put the files where the error without download says)."
    )


def read_idx(path) -> np.ndarray:
    """Reads an idx file (the MNIST format), gzip-compressed or not."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08: unsigned bytes, the only element type MNIST uses
        raise ValueError(f"{path}: not an unsigned-byte idx file (magic {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says {shape}, the file holds {array.size} values")
    return array.reshape(shape)


def _find_mnist(data_dir, stem: str) -> Path:
    for folder in (Path(data_dir) / "MNIST" / "raw", Path(data_dir) / "MNIST"):
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    raise DatasetNotFoundError(
        f"MNIST not found: expected {stem}[.gz] in {Path(data_dir) / 'MNIST'} "
        f"(or its raw/ folder, torchvision's layout). Get the idx files from {_MNIST_URL}."
    )


class MNIST(Dataset):
    """MNIST: ``[1, 28, 28]`` images in [0, 1]; files (idx, optionally .gz) in
    ``<data_dir>/MNIST/`` or ``<data_dir>/MNIST/raw/``."""

    n_classes = 10

    def __init__(self, data_dir, split="train", *, download=False):
        if split not in _MNIST_FILES:
            raise ValueError(f"split must be 'train' or 'test' for MNIST, got {split!r}")
        try:
            images_path, labels_path = (_find_mnist(data_dir, s) for s in _MNIST_FILES[split])
        except DatasetNotFoundError:
            if download:
                _no_download("MNIST")
            raise
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)  # uint8 [N, 1, 28, 28]
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index].float() / 255.0, int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


class CIFAR10(Dataset):
    """CIFAR10 from the python pickles in ``<data_dir>/cifar-10-batches-py/``: ``[3, 32, 32]``.

    ``normalize`` standardises each channel with the training-set mean and std;
    ``augment`` (training) pads by 4, crops 32 x 32 at random and flips left-right with
    probability 1/2, drawing from torch's global generator (seeded per worker by the loader).
    """

    n_classes = 10

    def __init__(self, data_dir, split="train", *, normalize=True, augment=False, download=False):
        folder = Path(data_dir) / "cifar-10-batches-py"
        names = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
        if split not in names:
            raise ValueError(f"split must be 'train' or 'test' for CIFAR10, got {split!r}")
        missing = [n for n in names[split] if not (folder / n).is_file()]
        if missing:
            if download:
                _no_download("CIFAR10")
            raise DatasetNotFoundError(
                f"CIFAR10 not found: expected {', '.join(missing)} in {folder}. Download "
                f"{_CIFAR10_URL} and extract it into {Path(data_dir)}."
            )
        images, labels = [], []
        for name in names[split]:
            with open(folder / name, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[b"labels"])
        self.images = torch.from_numpy(np.concatenate(images))
        self.labels = torch.tensor(labels, dtype=torch.int64)
        self.normalize, self.augment = normalize, augment
        self._mean = torch.tensor(CIFAR10_MEAN).view(3, 1, 1)
        self._std = torch.tensor(CIFAR10_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index].float() / 255.0
        if self.augment:
            padded = torch.nn.functional.pad(image, (4, 4, 4, 4))
            top, left = torch.randint(0, 9, (2,)).tolist()
            image = padded[:, top:top + 32, left:left + 32]
            if torch.rand(()) < 0.5:
                image = image.flip(-1)
        if self.normalize:
            image = (image - self._mean) / self._std
        return image, int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()
