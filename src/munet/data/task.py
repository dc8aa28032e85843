"""The in-memory form of one image-classification task: uint8 images and int64 labels per split."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from munet.errors import TaskError

SPLITS = ("train", "val", "test")


@dataclass
class TaskData:
    """One task: fixed train/validation/test splits of uint8 [N, C, H, W] images (C in {1, 3}).

    ``split_info`` is JSON-able: split policy, seed, per-split sizes, class count, and a sha256
    ``fingerprint`` of the class names, labels and pixels, so a store can detect a changed task.
    """

    name: str
    spec: str
    class_names: list[str]
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    split_info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        self.split_info.setdefault("sizes", {s: int(self.split(s)[1].shape[0]) for s in SPLITS})
        self.split_info.setdefault("num_classes", self.num_classes)
        self.split_info.setdefault("image_shape", list(self.image_shape))
        if "fingerprint" not in self.split_info:
            self.split_info["fingerprint"] = compute_fingerprint(self)

    @property
    def num_classes(self) -> int:
        """Number of classes (labels are 0 .. num_classes - 1)."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of every image."""
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of split ``name`` ("train", "val" or "test")."""
        if name not in SPLITS:
            raise TaskError(f"unknown split {name!r}; use one of {', '.join(SPLITS)}")
        return getattr(self, f"{name}_x"), getattr(self, f"{name}_y")

    def validate(self) -> None:
        """Raise TaskError unless dtypes, shapes and label ranges are consistent."""
        if self.num_classes < 2:
            raise TaskError(f"task {self.name!r} has {self.num_classes} classes; it needs >= 2")
        shape = None
        for s in SPLITS:
            x, y = self.split(s)
            if not isinstance(x, torch.Tensor) or x.dtype != torch.uint8 or x.ndim != 4:
                raise TaskError(f"task {self.name!r}: {s}_x must be a uint8 tensor [N, C, H, W]")
            if x.shape[1] not in (1, 3):
                raise TaskError(
                    f"task {self.name!r}: {s}_x has {x.shape[1]} channels; use 1 (gray) or 3 (RGB)"
                )
            if shape is not None and tuple(x.shape[1:]) != shape:
                raise TaskError(
                    f"task {self.name!r}: {s}_x images are {tuple(x.shape[1:])}, train has "
                    f"{shape}; resize all splits to one shape"
                )
            shape = tuple(x.shape[1:])
            if not isinstance(y, torch.Tensor) or y.dtype != torch.int64 or y.ndim != 1:
                raise TaskError(f"task {self.name!r}: {s}_y must be an int64 tensor [N]")
            if y.shape[0] != x.shape[0]:
                raise TaskError(
                    f"task {self.name!r}: {s} has {x.shape[0]} images but {y.shape[0]} labels"
                )
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise TaskError(
                    f"task {self.name!r}: {s} labels span {int(y.min())}..{int(y.max())}, "
                    f"outside 0..{self.num_classes - 1}"
                )
        for s in SPLITS:
            if self.split(s)[1].numel() == 0:
                # an empty test split would be reported as test accuracy 0.0
                raise TaskError(
                    f"task {self.name!r}: the {s} split is empty (a task needs non-empty "
                    f"train, val and test splits); add images to it or raise its share"
                )

    def summary(self) -> str:
        """One line: name, classes, split sizes and image shape."""
        sizes = "/".join(str(int(self.split(s)[1].shape[0])) for s in SPLITS)
        c, h, w = self.image_shape
        return (
            f"{self.name}: {self.num_classes} classes, train/val/test {sizes}, images {c}x{h}x{w}"
        )


def compute_fingerprint(task: TaskData) -> str:
    """sha256 hex digest of class names, shapes, labels and pixels of all splits."""
    h = hashlib.sha256()
    h.update(json.dumps(list(task.class_names), ensure_ascii=False).encode())
    for s in SPLITS:
        x, y = task.split(s)
        h.update(f"{s}:{list(x.shape)}:{list(y.shape)}".encode())
        h.update(np.ascontiguousarray(y.numpy()).astype("<i8").tobytes())
        h.update(np.ascontiguousarray(x.numpy()).tobytes())
    return h.hexdigest()
