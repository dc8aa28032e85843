"""TaskData validation and fingerprints."""

from __future__ import annotations

import json

import pytest
import torch

from munet.data.task import TaskData, compute_fingerprint
from munet.errors import TaskError


def make_task(n: int = 6, classes: int = 3, **overrides) -> TaskData:
    g = torch.Generator().manual_seed(0)
    fields = dict(
        name="toy",
        spec="builtin:toy",
        class_names=[f"c{i}" for i in range(classes)],
        train_x=torch.randint(0, 256, (n, 1, 4, 4), generator=g, dtype=torch.uint8),
        train_y=torch.arange(n) % classes,
        val_x=torch.randint(0, 256, (3, 1, 4, 4), generator=g, dtype=torch.uint8),
        val_y=torch.tensor([0, 1, 2]) % classes,
        test_x=torch.randint(0, 256, (2, 1, 4, 4), generator=g, dtype=torch.uint8),
        test_y=torch.tensor([1, 0]),
        split_info={"seed": 0},
    )
    fields.update(overrides)
    return TaskData(**fields)


def test_post_init_fills_json_split_info() -> None:
    task = make_task()
    assert task.num_classes == 3
    assert task.image_shape == (1, 4, 4)
    info = task.split_info
    assert info["sizes"] == {"train": 6, "val": 3, "test": 2}
    assert info["num_classes"] == 3
    assert len(info["fingerprint"]) == 64
    assert json.loads(json.dumps(info)) == info
    assert task.summary() == "toy: 3 classes, train/val/test 6/3/2, images 1x4x4"


def test_fingerprint_tracks_pixels_labels_and_class_names() -> None:
    a, b = make_task(), make_task()
    assert a.split_info["fingerprint"] == b.split_info["fingerprint"]
    b.test_x[0, 0, 0, 0] ^= 1
    assert compute_fingerprint(b) != a.split_info["fingerprint"]
    c = make_task(test_y=torch.tensor([0, 0]))
    assert c.split_info["fingerprint"] != a.split_info["fingerprint"]
    d = make_task(class_names=["x", "c1", "c2"])
    assert d.split_info["fingerprint"] != a.split_info["fingerprint"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"train_x": torch.zeros(6, 1, 4, 4)}, "uint8"),
        ({"train_x": torch.zeros(6, 2, 4, 4, dtype=torch.uint8)}, "2 channels"),
        ({"val_x": torch.zeros(3, 1, 5, 5, dtype=torch.uint8)}, "resize"),
        ({"train_y": torch.arange(6, dtype=torch.int32)}, "int64"),
        ({"train_y": torch.arange(5)}, "6 images but 5 labels"),
        ({"test_y": torch.tensor([0, 3])}, "outside 0..2"),
        (
            {
                "class_names": ["only"],
                "train_y": torch.zeros(6, dtype=torch.int64),
                "val_y": torch.zeros(3, dtype=torch.int64),
                "test_y": torch.zeros(2, dtype=torch.int64),
            },
            "needs >= 2",
        ),
        (
            {
                "val_x": torch.zeros(0, 1, 4, 4, dtype=torch.uint8),
                "val_y": torch.zeros(0, dtype=torch.int64),
            },
            "non-empty",
        ),
    ],
)
def test_validation_errors(override: dict, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        make_task(**override)


def test_split_accessor() -> None:
    task = make_task()
    x, y = task.split("val")
    assert x is task.val_x and y is task.val_y
    with pytest.raises(TaskError, match="unknown split 'dev'"):
        task.split("dev")
