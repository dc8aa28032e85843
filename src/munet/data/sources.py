"""What the file-based task sources share: spec options, seeded stratified splits, TaskData.

A source spec is ``<prefix>:<location>[?key=value&...]``; the options every source understands:

- ``name``: the task name (default: derived from the location);
- ``seed``: the split seed (default 0), recorded in the task's split info;
- ``split=a,b,c``: train/val/test shares of a source without fixed splits (default 80,10,10);
- ``val=f``: the share of the train split held out for validation when the source has train
  and test splits but no validation split (default: the source's, e.g. 0.05 for torchvision);
- ``size``: storage size in pixels, or ``keep`` (see :mod:`munet.data.decode`).

Splits are stratified: each class is permuted with its own generator seeded by (seed, class
index), so a split does not depend on the task's name or on other classes.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import torch

from munet.data.decode import Size, parse_size
from munet.data.task import SPLITS, TaskData
from munet.errors import TaskError

DEFAULT_SPLIT = (0.8, 0.1, 0.1)
OPTION_KEYS = ("name", "seed", "split", "val", "size")


@dataclass(frozen=True)
class SourceOptions:
    """Parsed spec options (see the module docstring); ``kwargs`` are ``kw.<name>`` options."""

    name: str | None = None
    seed: int = 0
    split: tuple[float, float, float] = DEFAULT_SPLIT
    val: float | None = None
    size: Size = None
    kwargs: dict[str, Any] = field(default_factory=dict)

    def to_info(self) -> dict[str, Any]:
        """The options that shape the data, for a task's split info."""
        return {
            "seed": self.seed,
            "split": list(self.split),
            "val": self.val,
            "size": self.size,
            **({"kwargs": self.kwargs} if self.kwargs else {}),
        }


def split_location(rest: str) -> tuple[str, str]:
    """``"<location>?<query>"`` -> (location, query)."""
    location, _, query = rest.partition("?")
    return location.strip(), query


def parse_options(
    options: str | Mapping[str, Any], where: str, allow_kwargs: bool = False
) -> SourceOptions:
    """Options from a URL query (``a=1&b=2``) or a mapping (task files); unknown keys refused."""
    items = parse_qsl(options, keep_blank_values=True) if isinstance(options, str) else options
    values: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for key, value in dict(items).items():
        if allow_kwargs and key.startswith("kw."):
            import yaml

            kwargs[key[3:]] = yaml.safe_load(value) if isinstance(value, str) else value
        elif key in OPTION_KEYS:
            values[key] = value
        else:
            known = ", ".join(OPTION_KEYS) + (", kw.<argument>" if allow_kwargs else "")
            raise TaskError(f"unknown option {key!r} in {where}; known options: {known}")
    name = values.get("name")
    if name is not None and not task_name(str(name)):
        raise TaskError(f"name={name!r} in {where} is empty; use letters, digits or _")
    return SourceOptions(
        name=task_name(str(name)) if name is not None else None,
        seed=_seed(values.get("seed", 0), where),
        split=parse_split(values["split"], where) if "split" in values else DEFAULT_SPLIT,
        val=_fraction(values["val"], "val", where) if "val" in values else None,
        size=parse_size(values.get("size"), where),
        kwargs=kwargs,
    )


def _seed(value: Any, where: str) -> int:
    try:
        seed = int(value)
    except (TypeError, ValueError):
        seed = -1
    if isinstance(value, bool) or seed < 0 or str(seed) != str(value).strip():
        raise TaskError(f"seed={value!r} in {where} is invalid; use a non-negative integer")
    return seed


def _fraction(value: Any, key: str, where: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        f = -1.0
    if not 0.0 < f < 1.0:
        raise TaskError(f"{key}={value!r} in {where} is invalid; use a fraction in (0, 1)")
    return f


def parse_split(value: Any, where: str) -> tuple[float, float, float]:
    """``"70,15,15"`` or ``[0.7, 0.15, 0.15]`` -> train/val/test fractions summing to 1."""
    parts = value.split(",") if isinstance(value, str) else value
    try:
        shares = [float(p) for p in parts]
    except (TypeError, ValueError):
        shares = []
    if len(shares) != 3 or min(shares, default=0) <= 0:
        raise TaskError(
            f"split={value!r} in {where} is invalid; give three positive train,val,test "
            "shares, e.g. split=80,10,10"
        )
    total = sum(shares)
    return (shares[0] / total, shares[1] / total, shares[2] / total)


def task_name(text: str) -> str:
    """A task name from free text: lower case, runs of other characters -> ``_``."""
    return re.sub(r"[^a-z0-9_]+", "_", text.strip().lower()).strip("_")


def stratified_split(
    labels: np.ndarray, val_frac: float, test_frac: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) indices into ``labels``, drawn per class from a seeded permutation.

    Each class gives round(fraction x count) examples to val and to test, at least one each when
    it has 3 or more examples, and always keeps one for training. Indices come back sorted.
    """
    parts: list[list[np.ndarray]] = [[], [], []]
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng = np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([seed, zlib.crc32(b"split"), int(c)]))
        )
        idx = idx[rng.permutation(idx.size)]
        n = idx.size
        n_val, n_test = (_share(n, f) for f in (val_frac, test_frac))
        while n_val + n_test >= n and n_val + n_test > 0:
            if n_test >= n_val and n_test > 0:
                n_test -= 1
            else:
                n_val -= 1
        parts[0].append(idx[n_val + n_test :])
        parts[1].append(idx[:n_val])
        parts[2].append(idx[n_val : n_val + n_test])
    out = [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in parts]
    return out[0], out[1], out[2]


def _share(n: int, frac: float) -> int:
    if frac <= 0:
        return 0
    return max(1, round(frac * n)) if n >= 3 else round(frac * n)


def make_task(
    name: str,
    spec: str,
    class_names: Sequence[str],
    splits: Mapping[str, tuple[np.ndarray, np.ndarray]],
    max_per_class: int | None,
    info: Mapping[str, Any],
) -> TaskData:
    """TaskData from per-split (uint8 [N, C, H, W], int labels) arrays, capped per class."""
    from munet.data.builtin import cap_per_class

    tensors: dict[str, torch.Tensor] = {}
    for s in SPLITS:
        x, y = splits[s]
        y = np.asarray(y, dtype=np.int64)
        keep = cap_per_class(np.arange(y.shape[0]), y, max_per_class)
        tensors[f"{s}_x"] = torch.from_numpy(np.ascontiguousarray(x[keep], dtype=np.uint8))
        tensors[f"{s}_y"] = torch.from_numpy(np.ascontiguousarray(y[keep]))
    if tensors["val_y"].numel() == 0:
        raise TaskError(
            f"task {name!r} has no validation examples; add images or raise the validation "
            "share (split=80,10,10 or val=0.1)"
        )
    return TaskData(
        name=name,
        spec=spec,
        class_names=list(class_names),
        split_info={**info, "max_per_class": max_per_class},
        **tensors,
    )
