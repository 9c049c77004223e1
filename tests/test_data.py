"""Loaders read tiny files written here in each dataset's real on-disk format, through the real
code path (tonic's classes for the event-based ones). No test touches the network: tonic's
download function is replaced by one that records the call and fails, and each test checks it
was never called (except the one test of download=True, which hands tonic a fake fetcher)."""
import gzip
import importlib
import pickle
import struct
import urllib.request

import numpy as np
import pytest
import torch

from snnfast import data
from snnfast.data import xor


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    try:
        import tonic.dataset
        import tonic.download_utils
    except ImportError:
        tonic = None
    if tonic is not None:
        monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", forbidden)
        monkeypatch.setattr(tonic.download_utils, "download_url", forbidden)
    yield calls
    assert calls == [], "a download was attempted"


def needs(module):
    """A module that install.sh installs (requirements-data.txt): failing to import it fails the
    test, as a broken install should (tests/check_imports.py says what is missing)."""
    return importlib.import_module(module)


# ---------------------------------------------------------------- writers of the real formats

def write_hsd(path, samples):
    """SHD/SSC HDF5: vlen spikes/times (s) and spikes/units per sample, labels, extra/*."""
    h5py = needs("h5py")
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (len(samples),), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (len(samples),), dtype=h5py.vlen_dtype(np.uint16))
        for i, (t, u, _) in enumerate(samples):
            times[i] = np.asarray(t, dtype=np.float32)
            units[i] = np.asarray(u, dtype=np.uint16)
        f.create_dataset("labels", data=np.array([s[2] for s in samples], dtype=np.uint16))
        f.create_dataset("extra/keys", data=[b"zero", b"one", b"two"])
        f.create_dataset("extra/speaker", data=np.zeros(len(samples), dtype=np.uint16))


def write_atis_bin(path, x, y, t, p):
    """N-MNIST / N-Caltech101 .bin: 5 bytes an event, x, y, then polarity (bit 7) and a 23-bit
    microsecond time stamp, big-endian."""
    x, y, t, p = (np.asarray(v, dtype=np.int64) for v in (x, y, t, p))
    raw = np.zeros((len(x), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.tobytes())


def write_aedat4(path, t, x, y, on, width=128, height=128):
    """An uncompressed AEDAT4 file with one event stream and one event packet (flatbuffers
    laid out by hand: an Ioheader table, then a size-prefixed EventPacket with id EVTS)."""
    description = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
        '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        "</node></node></node></dv>"
    ).encode()
    # Ioheader: root offset, id, vtable (only `description` set), table, string.
    header = struct.pack("<I", 20) + b"IOHE" + struct.pack("<HHHHH", 10, 8, 0, 0, 4) + b"\0\0"
    header += struct.pack("<iI", 20 - 8, 4) + struct.pack("<I", len(description)) + description + b"\0"
    header += b"\0" * (-len(header) % 4)
    events = np.zeros(len(t), dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("_", "V3")])
    events["t"], events["x"], events["y"], events["on"] = t, x, y, on
    body = struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + b"\0\0"
    body += struct.pack("<iI", 20 - 12, 4) + struct.pack("<I", len(t)) + events.tobytes()
    packet = struct.pack("<I", len(body)) + body
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"#!AER-DAT4.0\r\n" + struct.pack("<I", len(header)) + header
                     + struct.pack("<II", 0, len(packet)) + packet)


def write_idx(path, array, compress):
    array = np.asarray(array, dtype=np.uint8)
    payload = struct.pack(">I", 0x0800 | array.ndim) + b"".join(struct.pack(">I", n) for n in array.shape)
    payload += array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)


def expected_frames(frame, shape, x, y=None, p=None):
    """Plain-loop oracle: count each event into frames[frame, (p, y,) x]."""
    frames = np.zeros(shape, dtype=np.float32)
    for i in range(len(frame)):
        index = (frame[i], x[i]) if y is None else (frame[i], p[i], y[i], x[i])
        if all(0 <= v < n for v, n in zip(index, shape)):
            frames[index] += 1
    return frames


# ---------------------------------------------------------------- SHD / SSC

def test_shd_bins_1ms_from_zero_crops_to_T_and_clips_to_binary(tmp_path):
    needs("tonic")
    rng = np.random.default_rng(0)
    samples = []
    for label in (2, 0, 1):
        ms = rng.integers(0, 40, size=200)  # some beyond T = 30: cropped
        units = rng.integers(0, 700, size=200)
        samples.append(((ms + 0.5) / 1000.0, units, label))
    (tmp_path / "SHD").mkdir()
    write_hsd(tmp_path / "SHD" / "shd_train.h5", samples)

    shd = data.SHD(tmp_path, "train", T=30)
    assert len(shd) == 3 and shd.targets == [2, 0, 1]
    for i, (times, units, label) in enumerate(samples):
        frames, target = shd[i]
        ms = np.floor(np.asarray(times, np.float32).astype(np.float64) * 1000).astype(int)
        want = np.minimum(expected_frames(ms, (30, 700), units), 1)
        assert target == label
        assert frames.dtype == torch.float32 and frames.shape == (30, 700)
        np.testing.assert_array_equal(frames.numpy(), want)
    counts = data.SHD(tmp_path, "train", T=30, binary=False)[0][0]
    assert counts.max() > 1  # 200 events in 30 x 700 bins: some collide at this seed

    x, y = next(iter(data.make_loader(shd, 2, train=False)))
    assert x.shape == (30, 2, 700) and y.tolist() == [2, 0]
    copy = pickle.loads(pickle.dumps(shd))  # what a spawned worker process gets
    assert torch.equal(copy[1][0], shd[1][0])


def test_ssc_splits_and_missing_files_message(tmp_path):
    needs("tonic")
    (tmp_path / "SSC").mkdir()
    write_hsd(tmp_path / "SSC" / "ssc_valid.h5", [([0.0105], [699], 34)])
    frames, label = data.SSC(tmp_path, "valid", T=12)[0]
    assert label == 34 and frames.sum() == 1 and frames[10, 699] == 1
    with pytest.raises(data.DatasetNotFoundError, match=r"ssc_test\.h5.*ssc_test\.h5\.zip"):
        data.SSC(tmp_path, "test")
    with pytest.raises(ValueError, match="split"):
        data.SSC(tmp_path, "dev")


def test_download_true_hands_over_to_tonic(tmp_path, monkeypatch):
    needs("tonic")
    import tonic.dataset

    fetched = []

    def fake_fetch(url, download_root, filename=None, md5=None, **kwargs):
        fetched.append(filename)
        (tmp_path / "SHD").mkdir()
        write_hsd(tmp_path / "SHD" / filename[: -len(".zip")], [([0.001], [5], 7)])

    with pytest.raises(data.DatasetNotFoundError):
        data.SHD(tmp_path, "test")
    monkeypatch.setattr(tonic.dataset, "download_and_extract_archive", fake_fetch)
    shd = data.SHD(tmp_path, "test", T=3, download=True)
    assert fetched == ["shd_test.h5.zip"] and shd[0][1] == 7 and shd[0][0][1, 5] == 1


# ---------------------------------------------------------------- N-MNIST

def test_nmnist_time_windows_read_the_bin_format(tmp_path):
    needs("tonic")
    rng = np.random.default_rng(1)
    written = {}
    for folder, digit, name in (("Train", 3, "00002.bin"), ("Train", 0, "00010.bin"),
                                ("Train", 0, "00001.bin"), ("Test", 9, "00005.bin")):
        n = 300
        ev = dict(x=rng.integers(0, 34, n), y=rng.integers(0, 34, n),
                  t=np.sort(rng.integers(0, 25_000, n)), p=rng.integers(0, 2, n))
        write_atis_bin(tmp_path / "NMNIST" / folder / str(digit) / name, **ev)
        written[(folder, digit, name)] = ev

    train = data.NMNIST(tmp_path, "train", time_window_ms=2)
    assert train.targets == [0, 0, 3]  # sorted by path: 0/00001, 0/00010, 3/00002
    ev = written[("Train", 0, "00010.bin")]
    frames, label = train[1]
    frame = ev["t"] // 2000
    want = expected_frames(frame, (frame.max() + 1, 2, 34, 34), ev["x"], ev["y"], ev["p"])
    assert label == 0 and frames.shape == want.shape
    np.testing.assert_array_equal(frames.numpy(), want)

    cropped = data.NMNIST(tmp_path, "train", time_window_ms=5, T=3)[1][0]
    padded = data.NMNIST(tmp_path, "train", time_window_ms=10, T=8)[1][0]
    frame5, frame10 = ev["t"] // 5000, ev["t"] // 10000
    np.testing.assert_array_equal(cropped.numpy(), expected_frames(frame5, (3, 2, 34, 34), ev["x"], ev["y"], ev["p"]))
    np.testing.assert_array_equal(padded.numpy(), expected_frames(frame10, (8, 2, 34, 34), ev["x"], ev["y"], ev["p"]))

    test = data.NMNIST(tmp_path, "test", time_window_ms=1)
    assert len(test) == 1 and test[0][1] == 9
    x, y = next(iter(data.make_loader(train, 3, train=False)))
    assert x.shape[1:] == (3, 2, 34, 34) and y.tolist() == [0, 0, 3]


def test_nmnist_missing_says_where(tmp_path):
    needs("tonic")
    with pytest.raises(data.DatasetNotFoundError, match=r"NMNIST.Train.*train\.zip"):
        data.NMNIST(tmp_path, "train")


# ---------------------------------------------------------------- DVS128 Gesture

def test_dvs_gesture_fixed_frames_sorted(tmp_path):
    needs("tonic")
    rng = np.random.default_rng(2)
    written = {}
    for user, labels in (("user02_led", (10, 2, 0)), ("user01_fluorescent", (4,))):
        folder = tmp_path / "DVSGesture" / "ibmGestureTrain" / user
        folder.mkdir(parents=True)
        for label in labels:
            n = 103
            # tonic's npy layout: columns x, y, p, t (t in ms)
            events = np.stack([rng.integers(0, 128, n), rng.integers(0, 128, n),
                               rng.integers(0, 2, n), np.sort(rng.integers(0, 900, n))], 1)
            np.save(folder / f"{label}.npy", events)
            written[(user, label)] = events

    gestures = data.DVSGesture(tmp_path, "train", T=4)
    # sorted paths: user01/4, user02/0, user02/10, user02/2
    assert gestures.targets == [4, 0, 10, 2]
    assert gestures.events.users == [1, 2, 2, 2]
    frames, label = gestures[2]
    x, y, p, _ = written[("user02_led", 10)].T
    frame = (np.arange(103) * 4) // 103  # equal event counts: 26, 26, 26, 25
    assert label == 10 and frames.shape == (4, 2, 128, 128)
    np.testing.assert_array_equal(frames.numpy(), expected_frames(frame, (4, 2, 128, 128), x, y, p))
    assert frames.sum(dim=(1, 2, 3)).tolist() == [26, 26, 26, 25]

    by_time = data.DVSGesture(tmp_path, "train", T=4, split_by="time")[2][0]
    t_us = written[("user02_led", 10)][:, 3] * 1000
    frame_t = ((t_us - t_us.min()) * 4) // (t_us.max() - t_us.min() + 1)
    np.testing.assert_array_equal(by_time.numpy(), expected_frames(frame_t, (4, 2, 128, 128), x, y, p))

    small = data.DVSGesture(tmp_path, "train", T=4, size=32)[2][0]
    assert small.shape == (4, 2, 32, 32)
    torch.testing.assert_close(small, torch.nn.functional.avg_pool2d(frames, 4))


# ---------------------------------------------------------------- CIFAR10-DVS

def test_cifar10_dvs_reads_aedat4_and_splits_per_class(tmp_path):
    needs("tonic")
    needs("aedat")
    rng = np.random.default_rng(3)
    written = {}
    for cls in ("cat", "airplane"):
        for k in (2, 0, 1):
            n = 50
            ev = dict(t=np.sort(rng.integers(0, 10_000, n)), x=rng.integers(0, 128, n),
                      y=rng.integers(0, 128, n), on=rng.integers(0, 2, n))
            write_aedat4(tmp_path / "CIFAR10DVS" / cls / f"cifar10_{cls}_{k}.aedat4", **ev)
            written[(cls, k)] = ev

    train = data.CIFAR10DVS(tmp_path, "train", T=5, train_fraction=0.5)
    test = data.CIFAR10DVS(tmp_path, "test", T=5, train_fraction=0.5)
    # per class, sorted: files 0, 1 train (ceil(1.5) = 2), file 2 test; airplane = 0, cat = 3
    assert train.targets == [0, 0, 3, 3] and test.targets == [0, 3]
    frames, label = test[1]
    ev = written[("cat", 2)]
    frame = (np.arange(50) * 5) // 50
    assert label == 3
    np.testing.assert_array_equal(frames.numpy(), expected_frames(frame, (5, 2, 128, 128), ev["x"], ev["y"], ev["on"]))
    assert data.CIFAR10DVS(tmp_path, "train", T=2, size=48)[0][0].shape == (2, 2, 48, 48)


def test_class_split_is_ninety_ten_in_order():
    from snnfast.data.neuromorphic import _class_split

    targets = [0] * 10 + [1] * 20 + [0] * 5
    train, test = _class_split(targets, "train", 0.9), _class_split(targets, "test", 0.9)
    assert sorted(train + test) == list(range(35))
    assert [i for i in test if targets[i] == 0] == [34]  # ceil(0.9 * 15) = 14 of class 0 train
    assert [i for i in test if targets[i] == 1] == [28, 29]


# ---------------------------------------------------------------- N-Caltech101

def test_ncaltech101_class_names_become_sorted_ints(tmp_path):
    needs("tonic")
    rng = np.random.default_rng(4)
    written = {}
    for cls in ("airplanes", "Faces_easy", "ant"):
        for k in (1, 2):
            n = 40
            ev = dict(x=rng.integers(5, 200, n), y=rng.integers(3, 150, n),
                      t=np.sort(rng.integers(0, 30_000, n)), p=rng.integers(0, 2, n))
            write_atis_bin(tmp_path / "NCALTECH101" / "Caltech101" / cls / f"image_000{k}.bin", **ev)
            written[(cls, k)] = ev

    # the annotations archive, extracted beside the samples, holds .bin files too: not samples
    write_atis_bin(tmp_path / "NCALTECH101" / "Caltech101_annotations" / "ant" / "annotation_0001.bin",
                   x=[1], y=[1], t=[1], p=[0])
    train = data.NCaltech101(tmp_path, "train", T=2, train_fraction=0.5)
    assert train.classes == ["Faces_easy", "airplanes", "ant"] and train.n_classes == 3
    assert train.targets == [0, 1, 2]
    frames, label = train[1]
    ev = written[("airplanes", 1)]
    x, y = ev["x"] - ev["x"].min(), ev["y"] - ev["y"].min()  # tonic shifts each recording to 0
    assert label == 1 and frames.shape == (2, 2, 180, 240)
    np.testing.assert_array_equal(frames.numpy(), expected_frames((np.arange(40) * 2) // 40, (2, 2, 180, 240), x, y, ev["p"]))
    assert data.NCaltech101(tmp_path, "test", T=2, train_fraction=0.5).targets == [0, 1, 2]


# ---------------------------------------------------------------- MNIST, CIFAR10

@pytest.mark.parametrize("layout,compress", [("MNIST/raw", True), ("MNIST", False)])
def test_mnist_idx(tmp_path, layout, compress):
    rng = np.random.default_rng(5)
    images, labels = rng.integers(0, 256, (6, 28, 28)), rng.integers(0, 10, 6)
    suffix = ".gz" if compress else ""
    write_idx(tmp_path / layout / f"t10k-images-idx3-ubyte{suffix}", images, compress)
    write_idx(tmp_path / layout / f"t10k-labels-idx1-ubyte{suffix}", labels, compress)
    mnist = data.MNIST(tmp_path, "test")
    assert len(mnist) == 6 and mnist.targets == labels.tolist()
    image, label = mnist[4]
    assert image.shape == (1, 28, 28) and label == labels[4]
    torch.testing.assert_close(image[0], torch.tensor(images[4] / 255.0, dtype=torch.float32))
    with pytest.raises(data.DatasetNotFoundError, match="train-images-idx3-ubyte"):
        data.MNIST(tmp_path, "train")

    x, y = next(iter(data.make_loader(mnist, 4, train=False, collate_fn=data.StaticCollate(5))))
    assert x.shape == (5, 4, 1, 28, 28) and torch.equal(x[3], x[0]) and y.tolist() == labels[:4].tolist()


def test_cifar10_pickles(tmp_path):
    rng = np.random.default_rng(6)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (3, 3072)).astype(np.uint8), b"labels": rng.integers(0, 10, 3).tolist(),
                 b"batch_label": name.encode(), b"filenames": [b"a.png", b"b.png", b"c.png"]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        batches[name] = batch
    train = data.CIFAR10(tmp_path, "train", normalize=False)
    assert len(train) == 15
    image, label = train[7]  # data_batch_3, row 1
    want = batches["data_batch_3"][b"data"][1].reshape(3, 32, 32) / 255.0
    assert label == batches["data_batch_3"][b"labels"][1]
    torch.testing.assert_close(image, torch.tensor(want, dtype=torch.float32))
    normalized = data.CIFAR10(tmp_path, "test")[0][0]
    raw = torch.tensor(batches["test_batch"][b"data"][0].reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    torch.testing.assert_close(normalized, (raw - mean[:, None, None]) / std[:, None, None])
    augmented = data.CIFAR10(tmp_path, "train", normalize=False, augment=True)[7][0]
    assert augmented.shape == (3, 32, 32)
    (folder / "data_batch_4").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="data_batch_4"):
        data.CIFAR10(tmp_path, "train")


# ---------------------------------------------------------------- collate and loaders

def test_time_major_collate_pads_at_the_end():
    a, b = torch.rand(3, 2, 4), torch.rand(5, 2, 4)
    x, y = data.time_major_collate([(a, 1), (b, 4)])
    assert x.shape == (5, 2, 2, 4) and y.tolist() == [1, 4] and y.dtype == torch.int64
    assert torch.equal(x[:3, 0], a) and torch.equal(x[3:, 0], torch.zeros(2, 2, 4)) and torch.equal(x[:, 1], b)


def test_static_collate_poisson_rate():
    torch.manual_seed(0)
    image = torch.rand(1, 28, 28)
    x, _ = data.StaticCollate(T=400, encoding="poisson")([(image, 0)])
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert (x.mean(0)[0] - image).abs().max() < 0.1  # 400 Bernoulli draws: std <= 0.025
    with pytest.raises(ValueError, match="encoding"):
        data.StaticCollate(T=2, encoding="latency")


def test_loader_epochs_are_reproducible_and_differ():
    dataset = torch.utils.data.TensorDataset(torch.arange(40).float().view(40, 1, 1), torch.arange(40))

    def order(seed, epoch):
        loader = data.make_loader(dataset, 8, train=True, seed=seed)
        loader.set_epoch(epoch)
        return torch.cat([y for _, y in loader]).tolist()

    assert order(0, 1) == order(0, 1)
    assert order(0, 1) != order(0, 2) and order(0, 1) != order(1, 1)
    assert sorted(order(0, 3)) == list(range(40))


# ---------------------------------------------------------------- delayed spiking XOR

def test_xor_shapes_labels_and_rates():
    generator = torch.Generator().manual_seed(0)
    x, y = xor.generate(4000, generator)
    assert x.shape == (200, 4000, 20) and x.dtype == torch.float32 and y.shape == (4000,)
    assert set(x.unique().tolist()) == {0.0, 1.0}  # noise is OR-ed, never added
    first = x[:10].mean(dim=(0, 2))  # per-sample rate of each pattern: 200 draws
    second = x[190:].mean(dim=(0, 2))
    bit1, bit2 = (first > 0.4).long(), (second > 0.4).long()
    assert torch.equal(y, bit1 ^ bit2)
    assert 0.4 < bit1.float().mean() < 0.6 and 0.4 < (bit1 ^ bit2).float().mean() < 0.6
    # a pattern step spikes with 1 - (1 - rate)(1 - noise); elsewhere with the noise rate
    for bits, window in ((bit1, x[:10]), (bit2, x[190:])):
        for bit, rate in ((0, 0.2), (1, 0.6)):
            seen = window[:, bits == bit].mean().item()
            assert abs(seen - (1 - (1 - rate) * 0.99)) < 0.005
    assert abs(x[10:190].mean().item() - 0.01) < 0.0005


def test_xor_epochs_are_seeded_and_sharded():
    def epoch(seed, e, **kwargs):
        task = data.DelayedXOR(batch_size=8, batches=2, seed=seed, **kwargs)
        task.set_epoch(e)
        return list(task)

    a, b = epoch(0, 1), epoch(0, 1)
    assert len(a) == 2 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][0], epoch(0, 2)[0][0]) and not torch.equal(a[0][0], epoch(1, 1)[0][0])
    shards = [epoch(0, 1, rank=r, world_size=2) for r in range(2)]
    whole = torch.stack([shards[0][0][0], shards[1][0][0]], dim=2).reshape(200, 8, 20)
    assert shards[0][0][0].shape == (200, 4, 20) and torch.equal(whole, a[0][0])
    assert xor.READOUT_STEPS == slice(191, 200)


# ---------------------------------------------------------------- N-Digits (simulated camera)

from snnfast.data import ndigits  # noqa: E402


def test_ndigits_saccades_trace_the_triangle_in_100ms_legs():
    path = ndigits.saccade_path()
    assert path.shape == (301, 2)  # 1 ms steps over 3 x 100 ms
    for leg, corner in enumerate(ndigits.SACCADE_CORNERS):
        np.testing.assert_allclose(path[100 * leg], corner)
    assert path.min() >= 0 and path.max() <= 34 - 28  # the 6 pixels of travel
    speed = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert speed[50] > 10 * speed[0]  # raised cosine: slow at the corners, fast mid-leg


def test_ndigits_events_follow_the_dvs_rule_pixel_by_pixel(monkeypatch):
    """A plain loop over one pixel's log intensity (the same reference start, no noise, no
    jitter) gives the same events, times and polarities as the vectorised simulation."""
    monkeypatch.setattr(ndigits, "NOISE_HZ", 0.0)
    monkeypatch.setattr(ndigits, "JITTER_US", 0.0)
    images8 = ndigits._load_digits().images[:2]
    images = ndigits.digit_images(images8)
    thresholds = ndigits.sensor_thresholds(0)
    events = ndigits.simulate(images, np.random.default_rng(7), thresholds)
    # What simulate sees: each step's image, and the reference drawn first from the generator.
    path = ndigits.saccade_path()
    frames = np.zeros((len(path), 2, 34, 34))
    for s, (ox, oy) in enumerate(path):
        for b in range(2):
            frames[s, b] = ndimage_shift(images[b], ox, oy)
    logs = np.log(ndigits.BLACK_LEVEL + (1 - ndigits.BLACK_LEVEL) * frames)
    reference0 = logs[0] + np.random.default_rng(7).uniform(-0.5, 0.5, (2, 34, 34)) * thresholds
    checked = 0
    for b, y, x in ((0, 10, 12), (0, 17, 17), (1, 9, 20), (1, 25, 14), (0, 3, 30)):
        c, ref, want = thresholds[y, x], reference0[b, y, x], []
        for s in range(1, len(path)):
            start, end = logs[s - 1, b, y, x], logs[s, b, y, x]
            while abs(end - ref) >= c:
                up = end > ref
                ref += c if up else -c
                want.append((int(np.rint((s - 1 + (ref - start) / (end - start)) * 1000)), int(up)))
        e = events[b][(events[b]["x"] == x) & (events[b]["y"] == y)]
        assert list(zip(e["t"].tolist(), e["p"].tolist())) == want
        checked += len(want)
    assert checked > 20  # the pixels chosen sit on strokes


def ndimage_shift(image28, ox, oy):
    """The 28 x 28 image at sub-pixel offset (ox, oy) on the 34 x 34 sensor, bilinearly."""
    out = np.zeros((34, 34))
    for y in range(34):
        for x in range(34):
            sy, sx = y - oy, x - ox  # source coordinates
            y0, x0 = int(np.floor(sy)), int(np.floor(sx))
            for yy, wy in ((y0, 1 - (sy - y0)), (y0 + 1, sy - y0)):
                for xx, wx in ((x0, 1 - (sx - x0)), (x0 + 1, sx - x0)):
                    if 0 <= yy < 28 and 0 <= xx < 28:
                        out[y, x] += wy * wx * image28[yy, xx]
    return out


def test_ndigits_events_are_tonic_nmnist_like_and_seeded():
    needs("tonic")
    import tonic

    first = ndigits.generate_chunk(0, 0)
    again = ndigits.generate_chunk(0, 0)
    other = ndigits.generate_chunk(1, 0)
    assert len(first) == ndigits.CHUNK
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    counts = np.array([len(e) for e in first])
    assert 2000 < counts.mean() < 8000  # N-MNIST: ~4,000 events a sample
    for events in first:
        assert events.dtype == np.dtype(tonic.datasets.NMNIST.dtype)
        assert events["x"].min() >= 0 and events["x"].max() < 34
        assert events["y"].min() >= 0 and events["y"].max() < 34
        assert np.all(np.diff(events["t"]) >= 0) and 0 <= events["t"][0] and events["t"][-1] < 300_000
        assert set(np.unique(events["p"])) == {0, 1}
        per_saccade = np.bincount(events["t"] // 100_000, minlength=3)
        assert per_saccade.min() > 0.2 * per_saccade.sum()  # all three saccades show the digit
        corners = np.sum((events["t"] % 100_000 < 5000) | (events["t"] % 100_000 >= 95_000))
        middles = np.sum(np.abs(events["t"] % 100_000 - 50_000) < 5000)
        assert middles > 3 * corners  # fastest motion, most events
    store = ndigits.EventStore(0)
    events, label = store[70]  # chunk 1, simulated on demand
    assert np.array_equal(events, ndigits.generate_chunk(0, 64)[6]) and label == store.targets[70]


def test_ndigits_split_labels_and_frames_at_every_window():
    train, test = data.NDigits(None, "train"), data.NDigits(None, "test", time_window_ms=1)
    digits = ndigits._load_digits()
    assert len(train) == 1347 and len(test) == 450
    assert not set(train.indices) & set(test.indices)
    assert sorted(train.indices + test.indices) == list(range(1797))
    assert train.targets + test.targets == digits.target.tolist()
    events, label = train.events[5]
    for window in (1, 2, 3, 5, 10):
        frames, target = data.NDigits(None, "train", time_window_ms=window)[5]
        frame = events["t"] // (window * 1000)
        want = expected_frames(frame, (frame.max() + 1, 2, 34, 34), events["x"], events["y"], events["p"])
        assert target == label == digits.target[5] and frames.shape == want.shape
        assert 290 <= frames.shape[0] * window <= 300  # the saccades fill ~300 ms
        np.testing.assert_array_equal(frames.numpy(), want)
    x, y = next(iter(data.make_loader(data.NDigits(None, "test", T=50), 4, train=False)))
    assert x.shape == (50, 4, 2, 34, 34) and y.tolist() == digits.target[1347:1351].tolist()
    assert data.DATASETS["ndigits"] is data.NDigits
    with pytest.raises(ValueError, match="split"):
        data.NDigits(None, "valid")
    with pytest.raises(ValueError, match="time_window_ms"):
        data.NDigits(None, "train", time_window_ms=0)


def test_ndigits_cache_in_data_dir_is_written_once_and_read_back(tmp_path, monkeypatch):
    few = ndigits._load_digits()
    few.images, few.target = few.images[:70], few.target[:70]  # two chunks keep this fast
    monkeypatch.setattr(ndigits, "_load_digits", lambda: few)
    monkeypatch.setattr(ndigits, "DIGITS_TRAIN", 50)
    cached = data.NDigits(tmp_path, "test", time_window_ms=2)
    assert ndigits.cache_path(tmp_path, 0).is_file() and len(cached) == 20
    lazy = ndigits.EventStore(0)  # simulated, not read
    simulated = [lazy[50 + i][0] for i in (0, 19)]

    def no_simulation(*args, **kwargs):
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(ndigits, "generate", no_simulation)
    monkeypatch.setattr(ndigits, "generate_chunk", no_simulation)
    again = data.NDigits(tmp_path, "test", time_window_ms=2)
    assert again.events is cached.events  # one store a process for the splits and windows
    again.events = ndigits.EventStore(0, tmp_path)  # read back from the file
    for i, events in zip((0, 19), simulated):
        assert np.array_equal(again.events[again.indices[i]][0], events)
        assert torch.equal(again[i][0], cached[i][0])
    copy = pickle.loads(pickle.dumps(again))  # what a spawned worker process gets
    assert torch.equal(copy[3][0], again[3][0])
