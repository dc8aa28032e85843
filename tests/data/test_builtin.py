"""Built-in tasks: registry, spec dispatch, splits, Fashion-MNIST files, digits, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from munet.data import builtin, load
from munet.data.builtin import (
    FASHION_MNIST_CLASSES,
    cap_per_class,
    list_builtin_tasks,
    read_idx,
    seeded_split,
)
from munet.data.load import load_task, parse_spec
from munet.errors import TaskError


def test_list_builtin_tasks_fixed_order_and_descriptions() -> None:
    tasks = list_builtin_tasks()
    assert [n for n, _ in tasks] == [
        "fashion_mnist",
        "digits",
        "glyph_digits",
        "glyph_latin",
        "glyph_greek",
        "glyph_symbols",
    ]
    assert all(desc and "\n" not in desc for _, desc in tasks)
    assert "pretrain_glyphs" not in dict(tasks)


def test_parse_spec() -> None:
    assert parse_spec("digits") == ("builtin", "digits")
    assert parse_spec(" builtin:digits ") == ("builtin", "digits")
    assert parse_spec("imagefolder:/a/b:c") == ("imagefolder", "/a/b:c")
    with pytest.raises(TaskError, match="empty"):
        parse_spec("  ")


def test_unknown_task_name_lists_known_names() -> None:
    with pytest.raises(TaskError) as err:
        load_task("builtin:cifar10")
    msg = str(err.value)
    assert "'cifar10'" in msg and "\n" not in msg
    for name, _ in list_builtin_tasks():
        assert name in msg


def test_unknown_prefix_lists_supported_prefixes() -> None:
    with pytest.raises(TaskError, match=r"unknown task source 'hf'.*supported prefixes: builtin:"):
        load_task("hf:mnist")


def test_register_source_plugs_in_a_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load, "_SOURCES", dict(load._SOURCES))
    seen = []

    def loader(rest, cache_dir, *, max_per_class=None):
        seen.append((rest, max_per_class))
        return "sentinel"

    load.register_source("toy", loader)
    assert load_task("toy:abc", max_per_class=3) == "sentinel"
    assert seen == [("abc", 3)]


def test_seeded_split_is_disjoint_complete_and_seeded() -> None:
    tr, va, te = seeded_split(100, 10, 15, seed=0, name="x")
    assert (tr.size, va.size, te.size) == (75, 10, 15)
    allidx = np.concatenate([tr, va, te])
    assert np.array_equal(np.sort(allidx), np.arange(100))
    again = seeded_split(100, 10, 15, seed=0, name="x")
    assert all(np.array_equal(a, b) for a, b in zip((tr, va, te), again, strict=True))
    other = seeded_split(100, 10, 15, seed=1, name="x")
    assert not np.array_equal(va, other[1])
    other_name = seeded_split(100, 10, 15, seed=0, name="y")
    assert not np.array_equal(va, other_name[1])
    with pytest.raises(TaskError, match="too few"):
        seeded_split(10, 5, 5, seed=0, name="x")


def test_cap_per_class_keeps_first_k_of_each_class_in_order() -> None:
    labels = np.array([0, 1, 0, 0, 2, 1, 0])
    idx = np.array([6, 5, 4, 3, 2, 1, 0])  # labels 0,1,2,0,0,1,0
    assert cap_per_class(idx, labels, 2).tolist() == [6, 5, 4, 3, 1]
    assert cap_per_class(idx, labels, None) is idx
    with pytest.raises(TaskError, match="max_per_class=0"):
        cap_per_class(idx, labels, 0)


def test_digits_split_sizes_values_and_determinism() -> None:
    from sklearn.datasets import load_digits

    task = load_task("digits")
    assert task.name == "digits" and task.spec == "builtin:digits"
    assert task.class_names == [str(i) for i in range(10)]
    assert task.split_info["sizes"] == {"train": 1437, "val": 180, "test": 180}
    assert task.train_x.shape == (1437, 1, 8, 8) and task.train_x.dtype == torch.uint8
    assert int(task.train_x.max()) == 255 and int(task.train_x.min()) == 0
    d = load_digits()
    tr, va, te = seeded_split(1797, 180, 180, seed=0, name="digits")
    assert np.array_equal(task.test_y.numpy(), d.target[te])
    expected = np.round(d.images[va] * 255 / 16).astype(np.uint8)
    assert np.array_equal(task.val_x[:, 0].numpy(), expected)
    counts = torch.bincount(task.train_y, minlength=10)
    assert int(counts.sum()) == 1437 and int(counts.min()) > 100
    assert load_task("DIGITS").split_info["fingerprint"] == task.split_info["fingerprint"]
    reseeded = builtin.load_builtin("digits", seed=1)
    assert reseeded.split_info["fingerprint"] != task.split_info["fingerprint"]


def test_digits_max_per_class() -> None:
    task = load_task("builtin:digits", max_per_class=3)
    for s in ("train", "val", "test"):
        assert torch.bincount(task.split(s)[1], minlength=10).tolist() == [3] * 10
    assert task.split_info["max_per_class"] == 3


def test_fashion_mnist_from_idx_fixture(monkeypatch: pytest.MonkeyPatch, tiny_fashion) -> None:
    monkeypatch.setenv("MUNET_FASHION_MNIST_DIR", str(tiny_fashion["dir"]))
    task = load_task("fashion_mnist")
    assert task.spec == "builtin:fashion_mnist"
    assert task.class_names == FASHION_MNIST_CLASSES
    assert task.split_info["sizes"] == {"train": 57, "val": 3, "test": 20}  # 5% of 60 = 3
    tr, va, _ = seeded_split(60, 3, 0, seed=0, name="fashion_mnist")
    assert np.array_equal(task.val_x[:, 0].numpy(), tiny_fashion["train_x"][va])
    assert np.array_equal(task.train_y.numpy(), tiny_fashion["train_y"][tr])
    assert np.array_equal(task.test_x[:, 0].numpy(), tiny_fashion["test_x"])
    assert np.array_equal(task.test_y.numpy(), tiny_fashion["test_y"])
    assert task.train_x.shape[1:] == (1, 28, 28) and task.train_y.dtype == torch.int64
    assert set(tr.tolist()).isdisjoint(va.tolist())
    assert task.split_info["seed"] == 0


def test_fashion_mnist_missing_files_message(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("MUNET_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(TaskError) as err:
        load_task("fashion_mnist")
    msg = str(err.value)
    assert "sudo apt-get install -y dataset-fashion-mnist" in msg
    assert str(tmp_path / "nowhere" / "train-images-idx3-ubyte.gz") in msg
    assert "/usr/share/datasets/fashion-mnist" in msg and "\n" not in msg
    monkeypatch.delenv("MUNET_FASHION_MNIST_DIR")
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", str(tmp_path / "absent"))
    with pytest.raises(TaskError, match="dataset-fashion-mnist"):
        load_task("fashion_mnist")


def test_read_idx_rejects_malformed_files(tmp_path: Path, idx_writer) -> None:
    good = tmp_path / "a.gz"
    idx_writer(good, np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert read_idx(good).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    bad = tmp_path / "b"
    bad.write_bytes(bytes([0, 0, 8, 2, 0, 0, 0, 3, 0, 0, 0, 4]) + b"\x00" * 5)
    with pytest.raises(TaskError, match="truncated"):
        read_idx(bad)
    notidx = tmp_path / "c"
    notidx.write_bytes(b"hello world")
    with pytest.raises(TaskError, match="not an idx"):
        read_idx(notidx)


@pytest.mark.skipif(
    not Path(builtin.FASHION_MNIST_DIR, "t10k-labels-idx1-ubyte.gz").is_file(),
    reason="dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_split_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUNET_FASHION_MNIST_DIR", raising=False)
    task = load_task("builtin:fashion_mnist")
    assert task.split_info["sizes"] == {"train": 57000, "val": 3000, "test": 10000}
    assert torch.bincount(task.test_y).tolist() == [1000] * 10
    assert torch.bincount(task.train_y).sum() + torch.bincount(task.val_y).sum() == 60000
