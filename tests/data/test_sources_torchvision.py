"""torchvision: datasets already on disk (never downloaded), their own splits, a seeded 5%
validation split, one-line errors for missing data."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from munet.data.load import load_task
from munet.errors import TaskError


def write_raw_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed idx file, as torchvision's MNIST reads from <root>/<Class>/raw/."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path):
    """<root>/MNIST/raw with 400 train (40 per class) and 50 test images of 28x28."""
    rng = np.random.default_rng(0)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    data = {
        "train": (rng.integers(0, 256, (400, 28, 28)), np.arange(400) % 10),
        "t10k": (rng.integers(0, 256, (50, 28, 28)), np.arange(50) % 10),
    }
    for prefix, (x, y) in data.items():
        write_raw_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_raw_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return tmp_path, data


def test_mnist_uses_its_test_split_and_a_seeded_5_percent_validation(fake_mnist):
    root, data = fake_mnist
    task = load_task(f"torchvision:MNIST:{root}")
    assert task.name == "mnist" and task.num_classes == 10
    assert task.class_names[0] == "0 - zero" and task.image_shape == (1, 28, 28)
    (ex, ey) = data["t10k"]
    assert np.array_equal(task.test_x[:, 0].numpy(), ex) and task.test_y.tolist() == ey.tolist()
    assert [int(task.split(s)[1].numel()) for s in ("train", "val")] == [380, 20]
    assert task.val_y.tolist().count(3) == 2  # stratified: 5% of every class
    # train and val partition the training file exactly, with matching labels
    tx, ty = data["train"]
    rows = {bytes(tx[i].astype(np.uint8)): int(ty[i]) for i in range(len(ty))}
    seen = [
        (bytes(x[0].numpy()), int(y))
        for s in ("train", "val")
        for x, y in zip(*task.split(s), strict=True)
    ]
    assert sorted(seen) == sorted(rows.items())
    info = task.split_info
    assert (info["source"], info["dataset"], info["seed"], info["val"]) == (
        "torchvision",
        "MNIST",
        0,
        0.05,
    )
    assert "MNIST's own splits: train, test" in info["policy"]
    other = load_task(f"torchvision:MNIST:{root}?seed=4&val=0.1&size=32&name=m2")
    assert other.name == "m2" and other.image_shape == (1, 32, 32)
    assert int(other.val_y.numel()) == 40


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        ("CIFAR10", "cifar-10-batches-py/"),
        ("FashionMNIST", "FashionMNIST/raw/"),
        ("SVHN", "{train,test}_32x32.mat"),
    ],
)
def test_missing_dataset_is_one_line_naming_the_path(tmp_path, cls, expected):
    with pytest.raises(TaskError) as err:
        load_task(f"torchvision:{cls}:{tmp_path}")
    msg = str(err.value)
    assert f"{tmp_path}/{expected}" in msg and "never downloads" in msg and "\n" not in msg
    assert not any(tmp_path.iterdir())  # nothing was fetched or created


def test_spec_errors(tmp_path):
    with pytest.raises(TaskError, match="no dataset class 'Cifar'"):
        load_task(f"torchvision:Cifar:{tmp_path}")
    with pytest.raises(TaskError, match="incomplete"):
        load_task("torchvision:MNIST")
    with pytest.raises(TaskError, match="unknown option 'sede'"):
        load_task(f"torchvision:MNIST:{tmp_path}?sede=1")


def test_dataset_without_splits_is_split_by_seed(tmp_path):
    """torchvision's ImageFolder: items decoded one by one, 80/10/10 per class."""
    for c in ("ant", "bee"):
        (tmp_path / c).mkdir()
        for i in range(10):
            Image.fromarray(np.full((12, 12, 3), 10 * i, np.uint8)).save(tmp_path / c / f"{i}.png")
    task = load_task(f"torchvision:ImageFolder:{tmp_path}?name=insects")
    assert task.name == "insects" and task.class_names == ["ant", "bee"]
    assert task.image_shape == (1, 12, 12)  # R = G = B everywhere: stored gray
    assert [int(task.split(s)[1].numel()) for s in ("train", "val", "test")] == [16, 2, 2]
    assert "own splits: none" in task.split_info["policy"]


def test_array_layouts_of_cifar_and_svhn_are_read_directly():
    """CIFAR keeps NHWC uint8 + a targets list, SVHN NCHW uint8 + a labels array."""
    from types import SimpleNamespace

    from munet.data.torchvision_source import arrays_of

    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    x, y = arrays_of(SimpleNamespace(data=nhwc, targets=[0, 1, 2, 3, 4]))
    assert x.shape == (5, 3, 32, 32) and np.array_equal(x[1, 2], nhwc[1, :, :, 2])
    assert y.tolist() == [0, 1, 2, 3, 4]
    nchw = rng.integers(0, 256, (4, 3, 32, 32), dtype=np.uint8)
    x, y = arrays_of(SimpleNamespace(data=nchw, labels=np.array([9, 8, 7, 6])))
    assert np.array_equal(x, nchw) and y.dtype == np.int64
    assert arrays_of(SimpleNamespace(data=nchw.astype(np.float32), labels=[0] * 4)) is None
