"""MNIST, CIFAR10 and CIFAR100 from their original files, ImageNet from its class folders,
and scikit-learn's bundled digits, without torchvision.

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
_CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)


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


def _crop_and_flip(image: torch.Tensor, size: int, padding: int = 4) -> torch.Tensor:
    """Pads by ``padding``, crops ``size`` x ``size`` at random and flips left-right with
    probability 1/2, drawing from torch's global generator (seeded per worker by the loader)."""
    padded = torch.nn.functional.pad(image, (padding,) * 4)
    top, left = torch.randint(0, 2 * padding + 1, (2,)).tolist()
    image = padded[:, top:top + size, left:left + size]
    return image.flip(-1) if torch.rand(()) < 0.5 else image


class _CIFAR(Dataset):
    """The CIFAR python pickles: ``[3, 32, 32]`` images. ``normalize`` standardises each
    channel with the training-set mean and std; ``augment`` (training) pads by 4, crops
    32 x 32 at random and flips left-right with probability 1/2."""

    name: str
    folder: str  # under data_dir
    files: dict  # split -> pickle files
    label_key: bytes
    url: str
    mean: tuple
    std: tuple

    def __init__(self, data_dir, split="train", *, normalize=True, augment=False, download=False):
        folder = Path(data_dir) / self.folder
        if split not in self.files:
            raise ValueError(f"split must be 'train' or 'test' for {self.name}, got {split!r}")
        missing = [n for n in self.files[split] if not (folder / n).is_file()]
        if missing:
            if download:
                _no_download(self.name)
            raise DatasetNotFoundError(
                f"{self.name} not found: expected {', '.join(missing)} in {folder}. Download "
                f"{self.url} and extract it into {Path(data_dir)}."
            )
        images, labels = [], []
        for name in self.files[split]:
            with open(folder / name, "rb") as f:
                batch = pickle.load(f, encoding="bytes")
            images.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            labels.extend(batch[self.label_key])
        self.images = torch.from_numpy(np.concatenate(images))
        self.labels = torch.tensor(labels, dtype=torch.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"{self.name} {split}: {len(self.images)} images but {len(self.labels)} labels")
        self.normalize, self.augment = normalize, augment
        self._mean = torch.tensor(self.mean).view(3, 1, 1)
        self._std = torch.tensor(self.std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        image = self.images[index].float() / 255.0
        if self.augment:
            image = _crop_and_flip(image, 32)
        if self.normalize:
            image = (image - self._mean) / self._std
        return image, int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()


class CIFAR10(_CIFAR):
    """CIFAR10 from the python pickles in ``<data_dir>/cifar-10-batches-py/`` (data_batch_1..5,
    test_batch): ``[3, 32, 32]``, 10 classes. Options as ``_CIFAR``."""

    n_classes = 10
    name = "CIFAR10"
    folder = "cifar-10-batches-py"
    files = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    label_key = b"labels"
    url = _CIFAR10_URL
    mean, std = CIFAR10_MEAN, CIFAR10_STD


class CIFAR100(_CIFAR):
    """CIFAR100 from the python pickles in ``<data_dir>/cifar-100-python/`` (train, test):
    ``[3, 32, 32]``, the 100 fine labels. Options as ``_CIFAR``."""

    n_classes = 100
    name = "CIFAR100"
    folder = "cifar-100-python"
    files = {"train": ["train"], "test": ["test"]}
    label_key = b"fine_labels"
    url = _CIFAR100_URL
    mean, std = CIFAR100_MEAN, CIFAR100_STD


# ImageNet's standard augmentation (He et al.; torchvision's reference recipe, which the IMP
# authors' ImageNet code uses): a random crop of 8-100 % of the area and aspect ratio 3/4-4/3
# resized to 224, flipped with probability 1/2; testing resizes the short side to 256 and crops
# the centre 224. Channels standardised with the training set's mean and std.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


class ImageNet(Dataset):
    """ImageNet (ILSVRC-2012) from the usual folder layout: ``<data_dir>/imagenet/train/<wnid>/
    *.JPEG`` and ``<data_dir>/imagenet/val/<wnid>/*.JPEG`` (the validation images sorted into
    class folders), read through Pillow. Classes are the sorted folder names of ``train``, so
    both splits number them alike. Samples are ``[3, size, size]`` float32 tensors.

    ``augment`` (training): the random resized crop and flip above; otherwise resize the short
    side to ``resize`` and crop the centre. Random draws come from torch's global generator
    (seeded per worker by the loader).
    """

    folder = "imagenet"
    splits = {"train": "train", "test": "val"}

    def __init__(self, data_dir, split="train", *, size: int = 224, resize: int = 256, augment=False,
                 normalize=True, download=False):
        if split not in self.splits:
            raise ValueError(f"split must be 'train' or 'test' (the val folder) for ImageNet, got {split!r}")
        root = Path(data_dir) / self.folder
        train_root, root_split = root / "train", root / self.splits[split]
        if not train_root.is_dir() or not root_split.is_dir():
            if download:
                _no_download("ImageNet")
            raise DatasetNotFoundError(
                f"ImageNet not found: expected class folders of JPEGs in {train_root} and {root / 'val'} "
                "(the validation images moved into one folder per class, the layout of torchvision's "
                "ImageFolder). ImageNet is not downloadable without an account at image-net.org."
            )
        self.classes = sorted(d.name for d in train_root.iterdir() if d.is_dir())
        index = {name: i for i, name in enumerate(self.classes)}
        self.samples = []
        for folder in sorted(d for d in root_split.iterdir() if d.is_dir()):
            if folder.name not in index:
                raise ValueError(f"ImageNet {split}: class folder {folder.name!r} is not among the training classes")
            self.samples += [(path, index[folder.name]) for path in sorted(folder.iterdir())
                             if path.suffix.lower() in IMAGE_EXTENSIONS]
        if not self.samples:
            raise DatasetNotFoundError(f"ImageNet {split}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {root_split}")
        self.n_classes = len(self.classes)
        self.size, self.resize, self.augment, self.normalize = int(size), int(resize), augment, normalize
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index):
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as file:
            image = file.convert("RGB")
        if self.augment:
            image = random_resized_crop(image, self.size)
            if torch.rand(()) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            image = center_crop(resize_short_side(image, self.resize), self.size)
        x = torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).float() / 255.0
        if self.normalize:
            x = (x - self._mean) / self._std
        return x, label

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]


def random_resized_crop(image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A crop of a random area fraction in ``scale`` and aspect ratio in ``ratio`` (uniform in
    log), resized to ``size`` x ``size`` (bilinear); after ten misses, the centre crop of the
    ratio nearest the image's."""
    from PIL import Image

    width, height = image.size
    area = width * height
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target = area * torch.empty(()).uniform_(*scale).item()
        aspect = torch.exp(torch.empty(()).uniform_(*log_ratio.tolist())).item()
        w, h = round((target * aspect) ** 0.5), round((target / aspect) ** 0.5)
        if 0 < w <= width and 0 < h <= height:
            top = torch.randint(0, height - h + 1, ()).item()
            left = torch.randint(0, width - w + 1, ()).item()
            break
    else:
        aspect = min(max(width / height, ratio[0]), ratio[1])
        w, h = (width, round(width / aspect)) if width / height < aspect else (round(height * aspect), height)
        top, left = (height - h) // 2, (width - w) // 2
    return image.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


def resize_short_side(image, short: int):
    from PIL import Image

    width, height = image.size
    if width <= height:
        new = (short, max(1, round(height * short / width)))
    else:
        new = (max(1, round(width * short / height)), short)
    return image.resize(new, Image.Resampling.BILINEAR)


def center_crop(image, size: int):
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"cannot crop {size} x {size} from an image of {width} x {height}; resize it first")
    left, top = (width - size) // 2, (height - size) // 2
    return image.crop((left, top, left + size, top + size))


# The 8 x 8 digits ship inside scikit-learn (1,797 images of 43 writers, 16 grey levels): a
# static data set small enough for the studies to train on a laptop CPU in minutes.
DIGITS_TRAIN = 1347  # the first 1,347 images train, the last 450 test (a fixed split: 3 to 1)


class Digits(Dataset):
    """scikit-learn's digits (``sklearn.datasets.load_digits``): ``[1, 8, 8]`` images in
    [0, 1], 10 classes; ``data_dir`` is not used (the file is inside scikit-learn)."""

    n_classes = 10

    def __init__(self, data_dir=None, split="train", *, download=False):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for Digits, got {split!r}")
        try:
            from sklearn.datasets import load_digits
        except ImportError as error:
            raise ImportError("Digits needs scikit-learn: pip install --no-deps scikit-learn joblib "
                              "threadpoolctl narwhals (install.sh does)") from error
        digits = load_digits()
        part = slice(0, DIGITS_TRAIN) if split == "train" else slice(DIGITS_TRAIN, None)
        self.images = torch.from_numpy(digits.images[part] / 16.0).float().unsqueeze(1)
        self.labels = torch.from_numpy(digits.target[part].astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], int(self.labels[index])

    @property
    def targets(self) -> list[int]:
        return self.labels.tolist()
