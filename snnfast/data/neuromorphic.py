"""Event-based datasets through tonic 1.7, turned into frames.

Every dataset here reads the files tonic's own class reads, from ``<data_dir>/<TonicClass>/``,
and returns ``(frames, label)`` with frames a float32 tensor ``[T, *F]`` (use
``snnfast.data.time_major_collate`` to batch them as ``[T, B, *F]``).

What differs from calling tonic directly:
- tonic decides whether to download by looking for the *archive* and a minimum count of
  extracted files (10,000 .bin for N-MNIST, ...). Here the extracted files alone decide, so a
  copy without its archive (or a small one) is used as it is; when nothing is found the error
  says which files to put where, and only ``download=True`` lets tonic fetch them.
- samples are sorted by path (tonic 1.7 lists DVS Gesture, CIFAR10-DVS and N-Caltech101 in
  file-system order), so indices and splits are the same on every machine.
- N-Caltech101's class-name targets become ints (index in the sorted class names).
- CIFAR10-DVS and N-Caltech101 have no official split: ``split="train"`` takes the first
  ``ceil(train_fraction * n)`` files of each class in sorted order, ``split="test"`` the rest
  (SpikingJelly's split_to_train_test_set with random_split=False, ratio 0.9).

tonic is imported on first use, never at ``import snnfast.data``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import frames as fr


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not under data_dir; the message says what to put where."""


def _tonic():
    try:
        import tonic.datasets
    except ImportError as error:
        raise ImportError(
            "the event-based datasets need tonic: pip install --no-deps -r requirements-data.txt"
        ) from error
    return tonic


def _has_file(root: str, pattern: str) -> bool:
    return next(iter(Path(root).glob(pattern)), None) is not None


def _open_tonic(cls_name: str, data_dir, download: bool, present, describe, **kwargs):
    """Builds tonic's dataset with its existence check replaced by ``present(self)``.

    The subclass keeps tonic's class name, because tonic puts files under
    ``<save_to>/<class name>``.
    """
    tonic = _tonic()
    base = getattr(tonic.datasets, cls_name)

    def _check_exists(self):
        return present(self)

    def _download(self):
        if not download:
            raise DatasetNotFoundError(describe(self))
        base.download(self)
        if cls_name == "NCALTECH101":
            # The archive holds Caltech101.zip (and annotations); tonic 1.7 leaves it packed.
            inner = os.path.join(self.location_on_system, self.data_filename)
            if os.path.isfile(inner) and not present(self):
                from tonic.download_utils import extract_archive

                extract_archive(inner, self.location_on_system)

    local = type(cls_name, (base,), {"_check_exists": _check_exists, "download": _download})
    data_dir = os.fspath(data_dir)
    dataset = local(data_dir, **kwargs)
    if not present(dataset):
        raise DatasetNotFoundError(describe(dataset))
    # The overrides matter only in __init__; tonic's own class pickles into worker processes.
    dataset.__class__ = base
    return dataset


def _missing(name: str, where: str, what: str, url: str, archive: str) -> str:
    return (
        f"{name} not found: expected {what} under {where}. Download {archive} from {url}, "
        f"extract it into {where}, or pass download=True (--download) to let tonic fetch it."
    )


def _sort_samples(dataset, extra: tuple[str, ...] = ()) -> None:
    """Sorts tonic's sample lists by path (data, targets and any per-sample list in extra)."""
    order = sorted(range(len(dataset.data)), key=lambda i: dataset.data[i])
    for name in ("data", "targets", *extra):
        values = getattr(dataset, name)
        setattr(dataset, name, [values[i] for i in order])


def _class_split(targets: list, split: str, train_fraction: float) -> list[int]:
    """Per class, the first ceil(fraction * n) indices (in order) train, the rest test."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    by_class: dict = {}
    for index, target in enumerate(targets):
        by_class.setdefault(target, []).append(index)
    chosen = []
    for indices in by_class.values():
        cut = math.ceil(len(indices) * train_fraction)
        chosen += indices[:cut] if split == "train" else indices[cut:]
    return sorted(chosen)


class _EventFrames(Dataset):
    """Shared part: index map into a tonic dataset, events -> frames, int labels."""

    def __init__(self, events, indices=None, labels=None):
        self.events = events
        self.indices = list(range(len(events))) if indices is None else list(indices)
        self._labels = labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index):
        events, target = self.events[self.indices[index]]
        label = int(target) if self._labels is None else self._labels[target]
        return self.to_frames(events), label

    @property
    def targets(self) -> list[int]:
        """Labels of all samples, without reading the events."""
        raw = [self.events.targets[i] for i in self.indices]
        return [int(t) if self._labels is None else self._labels[t] for t in raw]

    def to_frames(self, events) -> torch.Tensor:
        raise NotImplementedError


class SHD(_EventFrames):
    """Spiking Heidelberg Digits: ``[T, 700]`` spikes in ``dt_ms`` bins from t = 0.

    Files: ``<data_dir>/SHD/shd_train.h5`` and ``shd_test.h5``. ``T`` steps (default 1000, the
    first second, as the DH-SNN code bins SHD/SSC; longer recordings are cropped, shorter ones
    zero-padded). ``binary=True`` clips counts to 1 (DH-SNN's 1 ms binning is binary); with 1 ms
    bins a channel rarely fires twice in one bin.
    """

    n_channels = 700
    n_classes = 20
    _tonic_class = "SHD"

    def __init__(self, data_dir, split="train", *, T=1000, dt_ms=1.0, binary=True, download=False):
        self.T, self.dt_ms, self.binary = T, dt_ms, binary
        super().__init__(self._open(data_dir, split, download))

    def _open(self, data_dir, split, download):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for SHD, got {split!r}")
        return self._open_hsd(data_dir, download, train=split == "train")

    def _open_hsd(self, data_dir, download, **kwargs):
        def present(ds):
            return os.path.isfile(os.path.join(ds.location_on_system, ds.data_filename))

        def describe(ds):
            return _missing(self._tonic_class, ds.location_on_system, ds.data_filename,
                            ds.url, ds.filename)

        return _open_tonic(self._tonic_class, data_dir, download, present, describe, **kwargs)

    @property
    def targets(self) -> list[int]:
        import h5py

        path = os.path.join(self.events.location_on_system, self.events.data_filename)
        with h5py.File(path, "r") as f:
            return [int(label) for label in f["labels"][()]]

    def to_frames(self, events) -> torch.Tensor:
        frame = fr.frame_index_by_window(events["t"], self.dt_ms * 1000.0)
        frames = fr.accumulate(frame, (self.n_channels,), x=events["x"], n_frames=self.T)
        if self.binary:
            np.minimum(frames, 1.0, out=frames)
        return torch.from_numpy(frames)


class SSC(SHD):
    """Spiking Speech Commands: as SHD, 35 classes; files ``<data_dir>/SSC/ssc_{train,valid,test}.h5``."""

    n_classes = 35
    _tonic_class = "SSC"

    def _open(self, data_dir, split, download):
        if split not in ("train", "valid", "test"):
            raise ValueError(f"split must be 'train', 'valid' or 'test' for SSC, got {split!r}")
        return self._open_hsd(data_dir, download, split=split)


class _WindowFrames(_EventFrames):
    """34 x 34 camera recordings as frames of a fixed time window: ``[T, 2, 34, 34]`` event
    counts (N-MNIST's pipeline; N-Digits shares it). Frames start at t = 0; ``T=None`` keeps
    every window up to the last event, an int crops or pads to T."""

    sensor_size = (34, 34, 2)
    n_classes = 10

    def __init__(self, events, indices=None, *, time_window_ms, T):
        if not time_window_ms > 0:
            raise ValueError(f"time_window_ms must be positive, got {time_window_ms}")
        if T is not None and int(T) < 1:
            raise ValueError(f"T must be a positive number of frames or None, got {T}")
        self.time_window_ms, self.T = time_window_ms, T
        super().__init__(events, indices)

    def to_frames(self, events) -> torch.Tensor:
        frame = fr.frame_index_by_window(events["t"], self.time_window_ms * 1000.0)
        frames = fr.accumulate(frame, (2, 34, 34), x=events["x"], y=events["y"], p=events["p"],
                               n_frames=self.T)
        return torch.from_numpy(frames)


class NMNIST(_WindowFrames):
    """N-MNIST as frames of a fixed time window: ``[T, 2, 34, 34]`` event counts.

    Files: ``<data_dir>/NMNIST/Train/<digit>/*.bin`` and ``Test/<digit>/*.bin`` (train.zip and
    test.zip extracted). ``time_window_ms`` is the integration length (the paper uses 1, 2, 3,
    5, 10; 3 for training). Frames start at t = 0; ``T=None`` keeps every window up to the last
    event (about 300 ms, so ~100 frames at 3 ms), an int crops or pads to T.
    """

    def __init__(self, data_dir, split="train", *, time_window_ms=3.0, T=None, download=False):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for N-MNIST, got {split!r}")

        def present(ds):
            return _has_file(os.path.join(ds.location_on_system, ds.folder_name), "*/*.bin")

        def describe(ds):
            return _missing("N-MNIST", os.path.join(ds.location_on_system, ds.folder_name),
                            "<digit>/*.bin files", ds.url, ds.filename)

        events = _open_tonic("NMNIST", data_dir, download, present, describe,
                             train=split == "train")
        _sort_samples(events)
        super().__init__(events, time_window_ms=time_window_ms, T=T)


class _FixedFrames(_EventFrames):
    """Recordings compressed to a fixed number of frames ``[T, 2, H, W]`` (then resized)."""

    sensor_hw: tuple = (128, 128)

    def __init__(self, events, indices, labels, *, T, split_by, size):
        super().__init__(events, indices, labels)
        if int(T) < 1:
            raise ValueError(f"T must be a positive number of frames, got {T}")
        if split_by not in ("number", "time"):
            raise ValueError(f"split_by must be 'number' or 'time', got {split_by!r}")
        self.T, self.split_by, self.size = int(T), split_by, size

    def to_frames(self, events) -> torch.Tensor:
        frame = fr.frame_index_by_count(len(events), self.T, self.split_by, events["t"])
        frames = fr.accumulate(frame, (2, *self.sensor_hw), x=events["x"], y=events["y"],
                               p=events["p"], n_frames=self.T)
        return fr.resize(torch.from_numpy(frames), self.size)


class DVSGesture(_FixedFrames):
    """DVS128 Gesture (tonic's preprocessed copy): ``[T, 2, 128, 128]``, or ``size`` after
    area resizing (32 gives the paper's Downsampling(2048) = 2 x 32 x 32).

    Files: ``<data_dir>/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy`` and
    ``ibmGestureTest/...`` (ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz extracted).
    ``split_by="number"`` gives frames of equal event counts (SpikingJelly's fixed-frame
    integration), ``"time"`` frames of equal duration.
    """

    n_classes = 11

    def __init__(self, data_dir, split="train", *, T=20, split_by="number", size=None,
                 download=False):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for DVS Gesture, got {split!r}")

        def present(ds):
            return _has_file(os.path.join(ds.location_on_system, ds.folder_name), "*/*.npy")

        def describe(ds):
            return _missing("DVS128 Gesture", os.path.join(ds.location_on_system, ds.folder_name),
                            "userNN_<lighting>/<label>.npy files", ds.url, ds.filename)

        events = _open_tonic("DVSGesture", data_dir, download, present, describe,
                             train=split == "train")
        _sort_samples(events, extra=("users", "lighting"))
        super().__init__(events, None, None, T=T, split_by=split_by, size=size)


class CIFAR10DVS(_FixedFrames):
    """CIFAR10-DVS: ``[T, 2, 128, 128]`` (or ``size``; the IMP paper uses 48 and T = 10).

    Files: ``<data_dir>/CIFAR10DVS/<class>/*.aedat4`` (tonic's CIFAR10DVS.zip and the class zips
    inside it extracted). Reading needs the ``aedat`` package.
    """

    n_classes = 10

    def __init__(self, data_dir, split="train", *, T=10, split_by="number", size=None,
                 train_fraction=0.9, download=False):
        def present(ds):
            return _has_file(ds.location_on_system, "*/*.aedat4")

        def describe(ds):
            return _missing("CIFAR10-DVS", ds.location_on_system, "<class>/*.aedat4 files",
                            ds.url, ds.filename)

        events = _open_tonic("CIFAR10DVS", data_dir, download, present, describe)
        _sort_samples(events)
        indices = _class_split(events.targets, split, train_fraction)
        super().__init__(events, indices, None, T=T, split_by=split_by, size=size)


class NCaltech101(_FixedFrames):
    """N-Caltech101: ``[T, 2, 180, 240]`` (or ``size``; the IMP paper uses 128 and T = 16).

    Files: ``<data_dir>/NCALTECH101/Caltech101/<class>/*.bin``. Recordings have different
    sizes; tonic shifts each to start at x = y = 0, and the frames are 240 wide and 180 high
    (SpikingJelly's N-Caltech101 frame size); addresses beyond that are dropped. Labels are indices in the sorted class
    folder names (``classes``).
    """

    sensor_hw = (180, 240)

    def __init__(self, data_dir, split="train", *, T=16, split_by="number", size=None,
                 train_fraction=0.9, download=False):
        # tonic 1.7 walks all of NCALTECH101/ (its base class blanks folder_name), which would
        # also pick up the annotation .bin files if Caltech101_annotations.zip was extracted.
        def samples_dir(ds):
            return os.path.join(ds.location_on_system, "Caltech101")

        def present(ds):
            return _has_file(samples_dir(ds), "*/*.bin")

        def describe(ds):
            return _missing("N-Caltech101", samples_dir(ds), "<class>/*.bin files", ds.url,
                            f"{ds.filename} (and {ds.data_filename} in it)")

        events = _open_tonic("NCALTECH101", data_dir, download, present, describe)
        keep = [i for i, path in enumerate(events.data)
                if os.path.dirname(os.path.dirname(path)) == samples_dir(events)]
        events.data = [events.data[i] for i in keep]
        events.targets = [events.targets[i] for i in keep]
        _sort_samples(events)
        self.classes = sorted(set(events.targets))
        labels = {name: index for index, name in enumerate(self.classes)}
        indices = _class_split(events.targets, split, train_fraction)
        super().__init__(events, indices, labels, T=T, split_by=split_by, size=size)

    @property
    def n_classes(self) -> int:
        return len(self.classes)
