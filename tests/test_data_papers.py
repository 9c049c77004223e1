"""The loaders the IMP and DA-LIF setups add: CIFAR100 from its python pickles and ImageNet from
class folders of JPEGs, each on tiny files written here in the real formats."""
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from snnfast import data
from snnfast.data import static


def write_cifar100(root, rng, n_train=5, n_test=3):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    written = {}
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 b"fine_labels": rng.integers(0, 100, n).tolist(), b"coarse_labels": rng.integers(0, 20, n).tolist(),
                 b"filenames": [f"{i}.png".encode() for i in range(n)], b"batch_label": name.encode()}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
        written[name] = batch
    meta = {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f)
    return written


def test_cifar100_pickles(tmp_path):
    written = write_cifar100(tmp_path, np.random.default_rng(7))
    train = data.CIFAR100(tmp_path, "train", normalize=False)
    assert len(train) == 5 and train.n_classes == 100
    assert train.targets == written["train"][b"fine_labels"]  # the fine labels, not the coarse
    image, label = train[3]
    want = written["train"][b"data"][3].reshape(3, 32, 32) / 255.0
    assert label == written["train"][b"fine_labels"][3]
    torch.testing.assert_close(image, torch.tensor(want, dtype=torch.float32))
    normalized, _ = data.CIFAR100(tmp_path, "test")[1]
    raw = torch.tensor(written["test"][b"data"][1].reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    mean, std = torch.tensor([0.5071, 0.4865, 0.4409]), torch.tensor([0.2673, 0.2564, 0.2762])
    torch.testing.assert_close(normalized, (raw - mean[:, None, None]) / std[:, None, None])
    torch.manual_seed(0)
    augmented, _ = data.CIFAR100(tmp_path, "train", normalize=False, augment=True)[3]
    assert augmented.shape == (3, 32, 32)
    assert data.DATASETS["cifar100"] is data.CIFAR100
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(data.DatasetNotFoundError, match="cifar-100-python.tar.gz"):
        data.CIFAR100(tmp_path, "test")


def write_jpeg(path, rng, width, height):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, (height, width, 3)).astype(np.uint8)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)


def write_imagenet(root, rng):
    """Two classes, train and val in class folders; images of different sizes and one
    grey-scale JPEG (ImageNet has some)."""
    for split, per_class in (("train", 2), ("val", 1)):
        for wnid in ("n01440764", "n01443537"):
            for k in range(per_class):
                write_jpeg(root / "imagenet" / split / wnid / f"{wnid}_{k}.JPEG", rng, 300 + 20 * k, 260)
    grey = root / "imagenet" / "val" / "n01443537" / "grey.JPEG"
    Image.fromarray(rng.integers(0, 256, (240, 320)).astype(np.uint8), mode="L").save(grey, format="JPEG")
    (root / "imagenet" / "train" / "n01440764" / "notes.txt").write_text("not an image")


def test_imagenet_class_folders(tmp_path):
    write_imagenet(tmp_path, np.random.default_rng(8))
    train = data.ImageNet(tmp_path, "train", augment=True)
    test = data.ImageNet(tmp_path, "test")
    assert train.classes == ["n01440764", "n01443537"] and train.n_classes == 2
    assert len(train) == 4 and train.targets == [0, 0, 1, 1]  # notes.txt is skipped
    assert len(test) == 3 and test.targets == [0, 1, 1]
    torch.manual_seed(0)
    for dataset in (train, test):
        image, label = dataset[1]
        assert image.shape == (3, 224, 224) and image.dtype == torch.float32
    grey, _ = test[1]  # grey.JPEG (sorted before n01443537_0.JPEG): converted to RGB, three equal channels before normalising
    mean, std = torch.tensor(static.IMAGENET_MEAN)[:, None, None], torch.tensor(static.IMAGENET_STD)[:, None, None]
    raw = grey * std + mean
    torch.testing.assert_close(raw[0], raw[1])
    torch.testing.assert_close(raw[1], raw[2])
    with pytest.raises(data.DatasetNotFoundError, match="class folders"):
        data.ImageNet(tmp_path / "elsewhere", "train")
    with pytest.raises(ValueError, match="split"):
        data.ImageNet(tmp_path, "val")


def test_imagenet_test_transform_by_hand(tmp_path):
    # A 400 x 200 image (width x height): the short side 200 -> 256 makes it 512 x 256; the
    # centre 224 x 224 starts at x = 144, y = 16. A left-to-right ramp shows which columns.
    ramp = np.tile(np.arange(400, dtype=np.float64) * 255 / 399, (200, 1))
    pixels = np.stack([ramp] * 3, -1).round().astype(np.uint8)
    for split in ("train", "val"):
        folder = tmp_path / "imagenet" / split / "n0"
        folder.mkdir(parents=True)
        Image.fromarray(pixels).save(folder / "ramp.png")
    image, label = data.ImageNet(tmp_path, "test", normalize=False)[0]
    assert label == 0 and image.shape == (3, 224, 224)
    resized = np.asarray(Image.fromarray(pixels).resize((512, 256), Image.Resampling.BILINEAR), dtype=np.float32)
    want = torch.tensor(resized[16:240, 144:368] / 255.0).permute(2, 0, 1)
    torch.testing.assert_close(image, want)


def test_random_resized_crop_stays_in_bounds_and_fills_the_size():
    torch.manual_seed(1)
    image = Image.fromarray(np.zeros((50, 400, 3), dtype=np.uint8))  # 400 x 50: ratio 8, outside [3/4, 4/3]
    for _ in range(20):
        assert static.random_resized_crop(image, 32).size == (32, 32)
    # Every draw missing (a scale above the whole image) falls back to the centre crop of the
    # widest allowed ratio: 4/3 of the height, 67 x 50 at x = 166.
    columns = np.tile((np.arange(400) % 256).astype(np.uint8)[None, :, None], (50, 1, 3))  # value = column
    crop = static.random_resized_crop(Image.fromarray(columns), 50, scale=(2.0, 3.0))
    assert crop.size == (50, 50)
    left = np.asarray(crop)[0, 0, 0]
    assert abs(int(left) - 166) <= 1
