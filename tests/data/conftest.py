"""Shared fixtures of the data-layer tests: a private cache folder and a tiny Fashion-MNIST."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One render cache for the whole session (glyph renders are shared between tests)."""
    return tmp_path_factory.mktemp("munet-data-cache")


@pytest.fixture(autouse=True)
def _private_cache(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> None:
    """Never touch ~/.cache from tests."""
    monkeypatch.setenv("MUNET_CACHE_DIR", str(cache_dir))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped idx file (magic 0x0000080N)."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


@pytest.fixture
def idx_writer():
    """The ``write_idx`` helper, as a fixture (test folders are not packages)."""
    return write_idx


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> dict[str, np.ndarray | Path]:
    """A Fashion-MNIST folder with 60 train (6 per class) and 20 test images of 28x28."""
    rng = np.random.default_rng(123)
    train_y = np.repeat(np.arange(10, dtype=np.uint8), 6)
    rng.shuffle(train_y)
    test_y = np.tile(np.arange(10, dtype=np.uint8), 2)
    train_x = rng.integers(0, 256, size=(60, 28, 28), dtype=np.uint8)
    test_x = rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8)
    folder = tmp_path / "fashion"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return {
        "dir": folder,
        "train_x": train_x,
        "train_y": train_y,
        "test_x": test_x,
        "test_y": test_y,
    }
