"""Datasets as time-major batches ``[T, B, *F]`` for snnfast modules.

Data lives under a ``data_dir``; nothing is downloaded at import, and a dataset is fetched only
with ``download=True`` (event-based datasets, through tonic). Each dataset's docstring says
which files go where.

- event-based, through tonic (``pip install --no-deps -r requirements-data.txt``):
  ``SHD``, ``SSC``, ``NMNIST``, ``DVSGesture``, ``CIFAR10DVS``, ``NCaltech101``;
- static, from the original files: ``MNIST`` (idx), ``CIFAR10`` and ``CIFAR100`` (python
  pickles), ``ImageNet`` (class folders of JPEGs, through Pillow); ``Digits`` (the 8 x 8
  digits bundled with scikit-learn);
- generated: ``DelayedXOR`` (the delayed spiking XOR task), ``NDigits`` (N-MNIST-like events
  made from scikit-learn's digits by a simulated camera; N-MNIST's frames).

``make_loader(dataset, batch_size, train=...)`` batches a dataset with ``time_major_collate``
(or ``StaticCollate(T)`` for images).
"""
from .loader import Loader, ShardSampler, StaticCollate, make_loader, time_major_collate
from .neuromorphic import (
    SHD,
    SSC,
    CIFAR10DVS,
    DatasetNotFoundError,
    DVSGesture,
    NCaltech101,
    NMNIST,
)
from .ndigits import NDigits
from .static import CIFAR10, CIFAR100, MNIST, Digits, ImageNet
from .xor import DelayedXOR

# Name -> dataset class (the names the training configs use).
DATASETS = {
    "shd": SHD,
    "ssc": SSC,
    "nmnist": NMNIST,
    "ndigits": NDigits,
    "dvs_gesture": DVSGesture,
    "cifar10dvs": CIFAR10DVS,
    "ncaltech101": NCaltech101,
    "mnist": MNIST,
    "cifar10": CIFAR10,
    "cifar100": CIFAR100,
    "imagenet": ImageNet,
    "digits": Digits,
}

__all__ = [
    "CIFAR10",
    "CIFAR100",
    "CIFAR10DVS",
    "DATASETS",
    "DVSGesture",
    "DatasetNotFoundError",
    "DelayedXOR",
    "Digits",
    "ImageNet",
    "Loader",
    "MNIST",
    "NCaltech101",
    "NDigits",
    "NMNIST",
    "SHD",
    "SSC",
    "ShardSampler",
    "StaticCollate",
    "make_loader",
    "time_major_collate",
]
