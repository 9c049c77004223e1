"""N-Digits: an N-MNIST-like event data set made from scikit-learn's 1,797 real 8 x 8 digits.

No N-MNIST can be downloaded on some machines; this data set is recorded the way N-MNIST was,
by a simulated camera, so the N-MNIST pipeline (frames of a fixed time window) runs on it
unchanged and the studies can run end to end anywhere in minutes.

How a sample is made (the N-MNIST facts from Orchard et al., Front. Neurosci. 2015; the rest
are our choices, the constants below):
- the 8 x 8 digit is upsampled bilinearly to 20 x 20 and centred in 28 x 28 (MNIST's layout:
  a 20 x 20 digit with a 4-pixel margin), on the 34 x 34 sensor (N-MNIST's size: the 28 x 28
  image plus 6 pixels of travel);
- the image moves along N-MNIST's three saccades, a triangle traced in about 100 ms each and
  back to the start, ~300 ms in all. Our triangle: (0, 0) -> (3, 6) -> (6, 0) -> (0, 0) in
  pixels (x right, y down), each leg with a raised-cosine velocity profile (a pan-tilt unit
  accelerates and brakes), sampled every ``STEP_US`` with sub-pixel (bilinear) shifts;
- a DVS pixel emits an event each time its log intensity has moved by its contrast threshold
  since its last event: ON (p = 1) up, OFF (p = 0) down. Thresholds differ a little from pixel
  to pixel (a fixed pattern of the simulated sensor, the same for every sample); a pixel's
  reference level starts at a random point within one threshold. Several crossings within a
  step get evenly interpolated microsecond timestamps (where the linearly interpolated log
  intensity crosses each level), plus a few microseconds of jitter;
- background-activity noise: uniformly random events at ``NOISE_HZ`` per pixel.

Events are tonic's structured array (fields x, y, t, p, int64 like tonic.datasets.NMNIST's),
t in microseconds from 0. The same ``seed`` gives the same events on every machine. Split: the
first 1,347 digits train, the last 450 test (snnfast.data.Digits' split).

Generating all 1,797 samples takes a few seconds (vectorised over samples); with a
``data_dir`` they are cached there as one .npz, otherwise kept in memory for the process.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .neuromorphic import _WindowFrames
from .static import DIGITS_TRAIN

SENSOR = 34  # N-MNIST's sensor: 34 x 34 pixels
DIGIT = 20  # MNIST's digit box inside its 28 x 28 image
MARGIN = (SENSOR - 6 - DIGIT) // 2  # 4: the 28 x 28 image's margin around the digit
SACCADE_US = 100_000  # each saccade lasts ~100 ms (N-MNIST)
# The triangle's corners, in pixels (x, y) of the digit's top-left offset: our choice of
# N-MNIST's three saccades within its 6 pixels of travel.
SACCADE_CORNERS = ((0.0, 0.0), (3.0, 6.0), (6.0, 0.0), (0.0, 0.0))
STEP_US = 1000  # simulation step; events within a step get interpolated times
CONTRAST_THRESHOLD = 0.3  # log-intensity change per event (DVS pixels: ~0.1-0.5)
THRESHOLD_MISMATCH = 0.03  # pixel-to-pixel standard deviation of the threshold
BLACK_LEVEL = 0.15  # the screen's black, as a fraction of its white (a monitor's contrast)
NOISE_HZ = 0.5  # background-activity events per pixel and second
JITTER_US = 20.0  # standard deviation of each event's timestamp jitter
CHUNK = 64  # samples simulated together; each chunk has its own generator (seed, start)
VERSION = 1  # bump when the recipe changes, so a cache from an older recipe is not reused

EVENT_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])  # tonic's


def saccade_path(step_us: int = STEP_US) -> np.ndarray:
    """Offsets ``[S + 1, 2]`` (x, y in pixels) of the digit at t = 0, step_us, ..., 3 saccades."""
    per_leg = SACCADE_US // step_us
    s = np.arange(per_leg) / per_leg
    ease = (1.0 - np.cos(np.pi * s)) / 2.0  # raised-cosine velocity: 0 at both ends
    legs = [np.asarray(a) + (np.asarray(b) - np.asarray(a)) * ease[:, None]
            for a, b in zip(SACCADE_CORNERS[:-1], SACCADE_CORNERS[1:])]
    return np.concatenate(legs + [np.asarray(SACCADE_CORNERS[-1])[None]], axis=0)


def digit_images(images8: np.ndarray) -> np.ndarray:
    """8 x 8 images (0-16) -> ``[N, 28, 28]`` in [0, 1]: 20 x 20 bilinear, 4-pixel margin."""
    x = torch.from_numpy(np.asarray(images8, dtype=np.float32) / 16.0).unsqueeze(1)
    x = F.interpolate(x, size=(DIGIT, DIGIT), mode="bilinear", align_corners=False)
    return F.pad(x, (MARGIN,) * 4).squeeze(1).clamp(0, 1).numpy()


def _shifted(placed: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The images at a sub-pixel offset: bilinear between the four integer placements."""
    ix, iy = (int(np.floor(v)) for v in offset)
    fx, fy = offset[0] - ix, offset[1] - iy
    ix1, iy1 = min(ix + 1, placed.shape[1] - 1), min(iy + 1, placed.shape[0] - 1)
    return ((1 - fx) * (1 - fy) * placed[iy, ix] + fx * (1 - fy) * placed[iy, ix1]
            + (1 - fx) * fy * placed[iy1, ix] + fx * fy * placed[iy1, ix1])


def simulate(images28: np.ndarray, rng: np.random.Generator, thresholds: np.ndarray) -> list[np.ndarray]:
    """The events of each ``[28, 28]`` image moved along the saccades (one array per image)."""
    n = len(images28)
    travel = SENSOR - images28.shape[-1]
    # Every integer placement of the digits on the sensor: [travel+1, travel+1, N, 34, 34].
    placed = np.zeros((travel + 1, travel + 1, n, SENSOR, SENSOR), dtype=np.float32)
    for oy in range(travel + 1):
        for ox in range(travel + 1):
            placed[oy, ox, :, oy:oy + images28.shape[-2], ox:ox + images28.shape[-1]] = images28
    path = saccade_path()

    def log_intensity(offset):
        return np.log(BLACK_LEVEL + (1 - BLACK_LEVEL) * _shifted(placed, offset))

    previous = log_intensity(path[0])
    reference = previous + rng.uniform(-0.5, 0.5, previous.shape) * thresholds
    found = []  # (sample, y, x, t, p) per step
    for step in range(1, len(path)):
        current = log_intensity(path[step])
        change = current - reference
        crossings = np.floor(np.abs(change) / thresholds).astype(np.int64)
        where = np.nonzero(crossings)
        if where[0].size:
            count = crossings[where]
            sign = np.sign(change[where])
            reference[where] += sign * count * thresholds[where[1:]]
            # Each crossing k = 1..count at level reference_old + sign * k * threshold, placed
            # where the linearly interpolated log intensity reaches that level.
            parts = [np.repeat(axis, count) for axis in where]
            k = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + 1
            old = np.repeat(reference[where] - sign * count * thresholds[where[1:]], count)
            level = old + np.repeat(sign, count) * k * thresholds[parts[1], parts[2]]
            start, end = previous[tuple(parts)], current[tuple(parts)]
            fraction = np.clip((level - start) / (end - start), 0.0, 1.0)
            t = (step - 1 + fraction) * STEP_US
            found.append((*parts, t, (np.repeat(sign, count) > 0).astype(np.int64)))
        previous = current
    sample, y, x, t, p = (np.concatenate(column) for column in zip(*found))
    # Background activity, then jitter.
    duration = (len(path) - 1) * STEP_US
    noise = rng.poisson(NOISE_HZ * SENSOR * SENSOR * duration * 1e-6, size=n)
    total = int(noise.sum())
    sample = np.concatenate([sample, np.repeat(np.arange(n), noise)])
    y = np.concatenate([y, rng.integers(0, SENSOR, total)])
    x = np.concatenate([x, rng.integers(0, SENSOR, total)])
    t = np.concatenate([t, rng.uniform(0, duration, total)])
    p = np.concatenate([p, rng.integers(0, 2, total)])
    t = np.clip(np.rint(t + rng.normal(0.0, JITTER_US, t.shape)), 0, duration - 1).astype(np.int64)
    order = np.lexsort((t, sample))
    bounds = np.searchsorted(sample[order], np.arange(n + 1))
    out = []
    for i in range(n):
        chosen = order[bounds[i]:bounds[i + 1]]
        events = np.empty(chosen.size, dtype=EVENT_DTYPE)
        events["x"], events["y"], events["t"], events["p"] = x[chosen], y[chosen], t[chosen], p[chosen]
        out.append(events)
    return out


def sensor_thresholds(seed: int) -> np.ndarray:
    """The simulated sensor's per-pixel contrast thresholds (its fixed pattern)."""
    rng = np.random.default_rng([seed, 0x5e5])
    thresholds = CONTRAST_THRESHOLD + THRESHOLD_MISMATCH * rng.standard_normal((SENSOR, SENSOR))
    return np.maximum(thresholds, 0.05).astype(np.float32)


def _load_digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("NDigits needs scikit-learn: pip install --no-deps scikit-learn joblib "
                          "threadpoolctl narwhals (install.sh does)") from error
    return load_digits()


def generate_chunk(seed: int, start: int, images8=None) -> list[np.ndarray]:
    """The events of digits ``start .. start + CHUNK - 1`` (start a multiple of CHUNK). They
    depend only on the seed and the chunk, so any sample can be made without the others."""
    if start % CHUNK:
        raise ValueError(f"start must be a multiple of CHUNK={CHUNK}, got {start}")
    images8 = _load_digits().images if images8 is None else images8
    images = digit_images(images8[start:start + CHUNK])
    return simulate(images, np.random.default_rng([seed, start]), sensor_thresholds(seed))


def generate(seed: int = 0, progress: bool = False) -> list[np.ndarray]:
    """The events of all 1,797 digits for ``seed`` (about half a minute on one core)."""
    images8 = _load_digits().images
    starts = range(0, len(images8), CHUNK)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="ndigits: simulating the camera", unit="chunk")
    return [events for start in starts for events in generate_chunk(seed, start, images8)]


def _pack(events: list[np.ndarray]) -> dict:
    """One compact array per field (uint8 addresses and polarity, int32 times) and offsets."""
    flat = np.concatenate(events)
    return dict(x=flat["x"].astype(np.uint8), y=flat["y"].astype(np.uint8),
                t=flat["t"].astype(np.int32), p=flat["p"].astype(np.uint8),
                offsets=np.cumsum([0] + [len(e) for e in events]).astype(np.int64))


def _unpack(packed: dict, index: int) -> np.ndarray:
    a, b = packed["offsets"][index], packed["offsets"][index + 1]
    events = np.empty(b - a, dtype=EVENT_DTYPE)
    for name in EVENT_DTYPE.names:
        events[name] = packed[name][a:b]
    return events


def cache_path(data_dir, seed: int) -> Path:
    return Path(data_dir) / "NDigits" / f"ndigits_v{VERSION}_seed{seed}.npz"


class EventStore:
    """Every digit's events for ``seed``; ``store[i]`` is ``(events in tonic's layout, label)``,
    what a tonic dataset returns, so N-MNIST's frame code reads it unchanged.

    With a ``data_dir`` all samples are read from ``<data_dir>/NDigits/`` (simulated and written
    there on first use); without one, each chunk of CHUNK samples is simulated when one of its
    samples is first read and kept (packed) for the life of the object.
    """

    def __init__(self, seed: int = 0, data_dir=None, progress: bool = False):
        self.seed = int(seed)
        digits = _load_digits()
        self.labels = digits.target.astype(np.int64)
        self.targets = self.labels.tolist()
        self._images8 = digits.images
        self._chunks: dict[int, dict] = {}
        self._all = None if data_dir is None else self._cached(cache_path(data_dir, self.seed), progress)

    def _cached(self, path: Path, progress: bool) -> dict:
        if path.is_file():
            with np.load(path) as f:
                return {name: f[name] for name in ("x", "y", "t", "p", "offsets")}
        packed = _pack(generate(self.seed, progress=progress))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # readers never see half a file
        np.savez_compressed(partial, **packed)
        os.replace(partial, path)
        return packed

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range (N-Digits has {len(self)})")
        if self._all is not None:
            return _unpack(self._all, index), int(self.labels[index])
        start = index - index % CHUNK
        if start not in self._chunks:
            self._chunks[start] = _pack(generate_chunk(self.seed, start, self._images8))
        return _unpack(self._chunks[start], index - start), int(self.labels[index])


@functools.lru_cache(maxsize=4)
def _shared_store(seed: int, data_dir: str | None, progress: bool) -> EventStore:
    """One store per (seed, data_dir) in a process: the train and test splits and every time
    window read the same events, simulated once."""
    return EventStore(seed, data_dir, progress)


def split_indices(split: str, n: int) -> range:
    """The fixed split: the first DIGITS_TRAIN digits train, the rest test."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test' for N-Digits, got {split!r}")
    return range(0, min(DIGITS_TRAIN, n)) if split == "train" else range(DIGITS_TRAIN, n)


class NDigits(_WindowFrames):
    """N-Digits (this module) as N-MNIST's frames: ``[T, 2, 34, 34]`` event counts of a fixed
    ``time_window_ms`` (1, 2, 3, 5, 10 as for N-MNIST), ~100 frames of 3 ms with ``T=None``.

    ``data_dir`` (optional) caches the simulated events in ``<data_dir>/NDigits/``; ``seed``
    chooses the simulated recordings (the same seed, the same events). Split: the first 1,347
    digits train, the last 450 test.
    """

    def __init__(self, data_dir=None, split="train", *, time_window_ms=3.0, T=None, seed=0,
                 download=False, progress=False):
        # download is accepted as every loader accepts it: nothing is downloaded.
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test' for N-Digits, got {split!r}")
        store = _shared_store(int(seed), None if data_dir is None else os.path.abspath(data_dir), progress)
        super().__init__(store, split_indices(split, len(store)), time_window_ms=time_window_ms, T=T)


def plot_samples(dataset: "NDigits", indices, path, *, times_ms=(15, 30, 50, 130, 150, 250)) -> bool:
    """A figure of a few samples of ``dataset``: the 8 x 8 digit, then its frames starting at
    ``times_ms`` (ON red, OFF blue), and the event rate over time of those samples; False when
    matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    indices, window_ms = list(indices), dataset.time_window_ms
    fig = plt.figure(figsize=(1.45 * (len(times_ms) + 1), 1.45 * len(indices) + 2.2))
    grid = fig.add_gridspec(len(indices) + 1, len(times_ms) + 1, height_ratios=[1] * len(indices) + [1.3])
    rate = fig.add_subplot(grid[-1, :])
    for row, index in enumerate(indices):
        events, label = dataset.events[dataset.indices[index]]
        frames = dataset.to_frames(events)
        ax = fig.add_subplot(grid[row, 0])
        ax.imshow(dataset.events._images8[dataset.indices[index]], cmap="gray_r")
        ax.set_ylabel(f"#{index}: {label}", fontsize=8)
        if row == 0:
            ax.set_title("8 x 8 digit", fontsize=8)
        for col, t in enumerate(times_ms, start=1):
            ax = fig.add_subplot(grid[row, col])
            on, off = (frames[int(t // window_ms), p].numpy() for p in (1, 0))
            image = np.stack([on, np.zeros_like(on), off], axis=-1)
            ax.imshow(np.clip(image / max(image.max(), 1.0), 0, 1))
            if row == 0:
                ax.set_title(f"{t}-{t + window_ms:g} ms", fontsize=8)
        for ax in fig.axes[-len(times_ms) - 1:]:
            ax.set_xticks([])
            ax.set_yticks([])
        per_ms = np.bincount(events["t"] // 1000, minlength=300)
        rate.plot(np.arange(len(per_ms)), per_ms, lw=0.8, label=f"#{index} ({len(events)} events)")
    for edge in (100, 200):
        rate.axvline(edge, color="grey", lw=0.8, ls=":")
    rate.set_xlabel("time (ms): three saccades of 100 ms")
    rate.set_ylabel("events / ms")
    rate.legend(fontsize=7, ncol=len(indices))
    fig.suptitle(f"N-Digits: scikit-learn digits through a simulated DVS ({window_ms:g} ms frames, "
                 "ON red, OFF blue)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv=None):
    """``python -m snnfast.data.ndigits``: simulates every sample, prints what it cost and
    the event counts, writes the cache (with --data-dir) and a figure (with --figure)."""
    import argparse
    import time

    p = argparse.ArgumentParser(prog="python -m snnfast.data.ndigits", description=main.__doc__)
    p.add_argument("--data-dir", type=Path, default=None, help="write the cache under DATA_DIR/NDigits/")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figure", type=Path, default=None, help="PNG of a few samples' frames")
    args = p.parse_args(argv)
    started = time.perf_counter()
    events = generate(args.seed, progress=True)
    seconds = time.perf_counter() - started
    counts = np.array([len(e) for e in events])
    on = np.mean([e["p"].mean() for e in events])
    print(f"{len(events)} samples simulated in {seconds:.1f} s; events per sample: mean {counts.mean():.0f}, "
          f"median {np.median(counts):.0f}, min {counts.min()}, max {counts.max()}; ON fraction {on:.3f}")
    if args.data_dir is not None:
        EventStore(args.seed, args.data_dir)
        print(f"cache: {cache_path(args.data_dir, args.seed)}")
    if args.figure is not None:
        train = NDigits(args.data_dir, "train", seed=args.seed)
        first_of = [train.targets.index(digit) for digit in (0, 3, 5, 8)]
        plot_samples(train, first_of, args.figure)
        print(f"figure: {args.figure}")


if __name__ == "__main__":
    main()
