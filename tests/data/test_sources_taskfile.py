"""taskfile: a YAML file naming the task, its source, its splits and its class names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from munet.data.load import load_task
from munet.errors import TaskError


def make_classes(folder: Path, counts: dict[str, int], start: int = 0) -> None:
    """Flat gray 8x8 PNGs whose value is 20 * (sorted class index) + image index."""
    for c, (name, n) in enumerate(sorted(counts.items())):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            arr = np.full((8, 8), 20 * c + start + i, np.uint8)
            Image.fromarray(arr).save(folder / name / f"{i}.png")


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_source_with_options_and_reordered_class_names(tmp_path):
    make_classes(tmp_path / "photos", {"daisy": 10, "rose": 10, "tulip": 10})
    spec = write(
        tmp_path / "flowers.yaml",
        {
            "source": "imagefolder:photos",  # relative to the task file
            "splits": {"seed": 3, "fractions": [60, 20, 20]},
            "class_names": ["tulip", "daisy", "rose"],
            "size": 16,
        },
    )
    task = load_task(str(spec))  # a bare .yaml path is a task file
    assert task.name == "flowers" and task.spec == f"taskfile:{spec}"
    assert task.class_names == ["tulip", "daisy", "rose"] and task.image_shape == (1, 16, 16)
    assert [int(task.split(s)[1].numel()) for s in ("train", "val", "test")] == [18, 6, 6]
    x, y = task.split("train")
    folder_class = (x[:, 0, 0, 0] // 20).tolist()  # 0 daisy, 1 rose, 2 tulip (folder order)
    assert [["daisy", "rose", "tulip"][c] for c in folder_class] == [
        task.class_names[i] for i in y.tolist()
    ]
    assert task.split_info["seed"] == 3
    same = load_task(f"taskfile:{spec}")
    assert same.split_info["fingerprint"] == task.split_info["fingerprint"]


def test_explicit_split_folders(tmp_path):
    make_classes(tmp_path / "a", {"x": 6, "y": 6})
    make_classes(tmp_path / "b", {"x": 2, "y": 2}, start=10)
    spec = write(
        tmp_path / "t.yml",
        {"name": "Two Folders", "splits": {"train": "a", "val": str(tmp_path / "b")}},
    )
    task = load_task(f"taskfile:{spec}")
    assert task.name == "two_folders"
    assert [int(task.split(s)[1].numel()) for s in ("train", "val", "test")] == [10, 4, 2]
    assert sorted(task.val_x[:, 0, 0, 0].tolist()) == [10, 11, 30, 31]


def test_numeric_classes_get_names(tmp_path):
    make_classes(tmp_path / "digits", {"0": 5, "1": 5, "2": 5})
    names = ["zero", "one", "two"]
    spec = write(tmp_path / "d.yaml", {"source": "imagefolder:digits", "class_names": names})
    task = load_task(str(spec))
    assert task.name == "d" and task.class_names == names
    assert (task.train_x[:, 0, 0, 0] // 20).tolist() == task.train_y.tolist()


def test_task_file_errors(tmp_path):
    make_classes(tmp_path / "p", {"a": 4, "b": 4})
    cases = [
        ({"source": "imagefolder:p", "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"source": "imagefolder:p", "splits": {"train": "p"}}, "either source or split folders"),
        ({"name": "x"}, "names no data"),
        ({"source": "imagefolder:p", "class_names": ["a", "c"]}, r"missing \['b'\]"),
        ({"source": "builtin:digits", "splits": {"seed": 2}}, "seed only apply to imagefolder"),
        ({"source": "imagefolder:p", "splits": {"fractions": [1, 2]}}, "three positive"),
    ]
    for i, (data, match) in enumerate(cases):
        with pytest.raises(TaskError, match=match):
            load_task(str(write(tmp_path / f"bad{i}.yaml", data)))
    with pytest.raises(TaskError, match="does not exist"):
        load_task(str(tmp_path / "nope.yaml"))
    (tmp_path / "broken.yaml").write_text("name: [unclosed")
    with pytest.raises(TaskError, match="not valid YAML"):
        load_task(f"taskfile:{tmp_path / 'broken.yaml'}")
