"""imagefolder against hostile folders: link loops, one file under two names, empty splits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from munet.data.load import load_task
from munet.errors import TaskError


def make(folder: Path, counts: dict[str, int]) -> None:
    for c, (name, n) in enumerate(sorted(counts.items())):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full((8, 8), 20 * c + i, dtype=np.uint8)
            Image.fromarray(arr).save(folder / name / f"img{i:03d}.png")


def sizes(task) -> int:
    return sum(int(task.split(s)[1].shape[0]) for s in ("train", "val", "test"))


def test_a_symlink_loop_does_not_multiply_images(tmp_path: Path) -> None:
    make(tmp_path / "t", {"a": 10, "b": 10})
    os.symlink(".", tmp_path / "t" / "a" / "loop")
    os.symlink("../b", tmp_path / "t" / "b" / "sub")  # a link back to its own folder too
    task = load_task(f"imagefolder:{tmp_path / 't'}")
    assert sizes(task) == 20
    every = sorted(int(v) for s in ("train", "val", "test") for v in task.split(s)[0][:, 0, 0, 0])
    assert every == sorted([i for i in range(10)] + [20 + i for i in range(10)])


def test_links_to_one_image_in_one_class_count_once(tmp_path: Path) -> None:
    make(tmp_path / "t", {"a": 10, "b": 10})
    os.link(tmp_path / "t" / "a" / "img000.png", tmp_path / "t" / "a" / "again.png")
    os.symlink("img001.png", tmp_path / "t" / "a" / "alias.png")
    assert sizes(load_task(f"imagefolder:{tmp_path / 't'}")) == 20


def test_one_file_in_two_classes_is_refused(tmp_path: Path) -> None:
    make(tmp_path / "t", {"a": 10, "b": 10})
    os.symlink(tmp_path / "t" / "a" / "img000.png", tmp_path / "t" / "b" / "stolen.png")
    with pytest.raises(TaskError, match="are the same file"):
        load_task(f"imagefolder:{tmp_path / 't'}")


def test_one_file_in_train_and_test_is_refused(tmp_path: Path) -> None:
    make(tmp_path / "t" / "train", {"a": 10, "b": 10})
    make(tmp_path / "t" / "test", {"a": 2, "b": 2})
    (tmp_path / "t" / "test" / "a" / "img000.png").unlink()
    os.link(tmp_path / "t" / "train" / "a" / "img005.png", tmp_path / "t" / "test" / "a" / "x.png")
    with pytest.raises(
        TaskError, match=r"same file \(split test/class 'a' and split train/class 'a'\)"
    ):
        load_task(f"imagefolder:{tmp_path / 't'}")


def test_an_empty_test_split_is_refused_in_one_line(tmp_path: Path) -> None:
    make(tmp_path / "t" / "train", {"a": 10, "b": 10})
    (tmp_path / "t" / "test" / "a").mkdir(parents=True)  # empty class folders are allowed,
    (tmp_path / "t" / "test" / "b").mkdir()  # but a test split of none is not
    with pytest.raises(TaskError, match="the test split is empty") as info:
        load_task(f"imagefolder:{tmp_path / 't'}")
    assert "\n" not in str(info.value)
