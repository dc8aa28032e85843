"""``torchvision:<DatasetClass>:<root>[?options]``: a torchvision classification dataset on disk.

munet never downloads: every dataset is opened with ``download=False`` and a missing one is
refused in one line naming where torchvision expects its files. Splits:

- the dataset's own test split (``train=False`` or ``split="test"``) is the test split;
- its own validation split (``split="val"``/``"valid"``) is used when it has one, otherwise the
  validation split is a seeded, stratified 5% of the training split (``val=f`` to change it);
- a dataset without splits (e.g. ``ImageFolder``, ``EuroSAT``) is split per class with
  ``split`` (default 80/10/10).

Datasets that keep their images in a uint8 array (MNIST family, CIFAR, SVHN, STL10) are read
from it directly; others are decoded item by item with PIL under :mod:`munet.data.decode`'s
rules. Constructor arguments a dataset needs can be given as ``kw.<name>=<value>`` (e.g.
``torchvision:EMNIST:/data?kw.split=balanced``). CIFAR's files are pickles: torchvision checks
their md5 against the published archive before unpickling them.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.data.decode import DEFAULT_STORAGE_SIZE, map_items, stack, to_array, warn_skipped
from munet.data.sources import (
    SourceOptions,
    make_task,
    parse_options,
    split_location,
    stratified_split,
    task_name,
)
from munet.data.task import TaskData
from munet.errors import TaskError

VAL_FRACTION = 0.05
SPLIT_NAMES = {
    "train": ("train", "trainval", "training"),
    "val": ("val", "valid", "validation"),
    "test": ("test", "testing"),
}
EXAMPLES = "MNIST, FashionMNIST, KMNIST, CIFAR10, CIFAR100, SVHN, STL10, ImageFolder"
PathLike = str | os.PathLike


def load_torchvision(
    rest: str, cache_dir: PathLike | None, *, max_per_class: int | None = None
) -> TaskData:
    """The ``torchvision:`` source: ``rest`` is ``<DatasetClass>:<root>[?options]``."""
    spec = f"torchvision:{rest}"
    cls_name, _, location = rest.partition(":")
    location, query = split_location(location)
    if not cls_name or not location:
        raise TaskError(
            f"task spec {spec!r} is incomplete; use torchvision:<DatasetClass>:<root>, "
            "e.g. torchvision:CIFAR10:/data/cifar"
        )
    opts = parse_options(query, spec, allow_kwargs=True)
    return load_dataset_task(
        cls_name.strip(), Path(location).expanduser(), opts, spec, max_per_class
    )


def dataset_class(name: str, spec: str) -> type:
    import torchvision.datasets as datasets

    cls = getattr(datasets, name, None)
    if not (isinstance(cls, type) and issubclass(cls, torch.utils.data.Dataset)):
        raise TaskError(
            f"task {spec!r}: torchvision has no dataset class {name!r}; classification "
            f"datasets include {EXAMPLES}"
        )
    return cls


def expected_location(cls: type, root: Path) -> str:
    """Where torchvision looks for ``cls``'s files under ``root`` (for the missing-data line)."""
    from torchvision.datasets import MNIST, SVHN

    if issubclass(cls, MNIST):
        return f"{root / cls.__name__ / 'raw'}/ (the idx files)"
    if issubclass(cls, SVHN):
        return f"{root}/{{train,test}}_32x32.mat"
    base = getattr(cls, "base_folder", None)
    return f"{root / base}/" if isinstance(base, str) else f"{root}/"


def open_splits(cls: type, root: Path, opts: SourceOptions, spec: str) -> dict[str, Any]:
    """The dataset objects of its own splits: {"train", "val", "test"} or {"pool"}."""
    params = inspect.signature(cls.__init__).parameters
    base: dict[str, Any] = dict(opts.kwargs)
    if "download" in params:
        base["download"] = False

    def make(**kw: Any) -> Any:
        try:
            return cls(str(root), **base, **kw)
        except (RuntimeError, FileNotFoundError) as err:
            msg = str(err).split("\n")[0]
            if isinstance(err, FileNotFoundError) or "not found" in msg.lower():
                raise TaskError(
                    f"task {spec!r}: {cls.__name__} is not on disk: expected "
                    f"{expected_location(cls, root)}; munet never downloads, so fetch it once "
                    f"with torchvision.datasets.{cls.__name__}({str(root)!r}, download=True) "
                    "where there is network"
                ) from None
            raise TaskError(f"task {spec!r}: torchvision {cls.__name__}: {msg}") from None
        except TypeError as err:
            raise TaskError(
                f"task {spec!r}: {cls.__name__}({err}); pass constructor arguments as "
                "kw.<name>=<value>"
            ) from None

    if "train" in params or ("split" in opts.kwargs and "kwargs" in params):
        return {"train": make(train=True), "test": make(train=False)}
    if "split" in params and "split" not in opts.kwargs:
        found: dict[str, Any] = {}
        for split, names in SPLIT_NAMES.items():
            for name in names:
                try:
                    found[split] = make(split=name)
                    break
                except ValueError:  # torchvision's verify_str_arg: not a split of this dataset
                    continue
        if "train" not in found:
            raise TaskError(
                f"task {spec!r}: {cls.__name__} has no train/trainval split; pass "
                "kw.split=<name> to load one split and split it by seed"
            )
        return found
    return {"pool": make()}


def arrays_of(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(uint8 [N, C, H, W], labels) straight from ``ds.data`` when it is a uint8 array."""
    data = getattr(ds, "data", None)
    targets = getattr(ds, "targets", None)
    if targets is None:
        targets = getattr(ds, "labels", None)
    if data is None or targets is None:
        return None
    x = data.numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    y = targets.numpy() if isinstance(targets, torch.Tensor) else np.asarray(targets)
    if x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y) or x.ndim not in (3, 4):
        return None
    if x.ndim == 3:
        x = x[:, None]
    elif x.shape[1] not in (1, 3) and x.shape[3] in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.shape[1] not in (1, 3):
        return None
    return np.ascontiguousarray(x), y.astype(np.int64)


def _resize_array(x: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 [N, C, H, W] array to size x size (bilinear, antialiased), in chunks."""
    out = []
    for lo in range(0, len(x), 4096):
        t = torch.from_numpy(x[lo : lo + 4096]).float()
        t = torch.nn.functional.interpolate(
            t, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out.append(t.round_().clamp_(0, 255).to(torch.uint8).numpy())
    return np.concatenate(out) if out else x


def read_split(ds: Any, opts: SourceOptions, where: str) -> tuple[np.ndarray, np.ndarray]:
    """All images and labels of one dataset object."""
    direct = arrays_of(ds)
    if direct is not None:
        x, y = direct
        if isinstance(opts.size, int) and x.shape[2:] != (opts.size, opts.size):
            x = _resize_array(x, opts.size)
        elif opts.size is None and max(x.shape[2:]) > DEFAULT_STORAGE_SIZE:
            x = _resize_array(x, DEFAULT_STORAGE_SIZE)
        return x, y

    def item(i: int) -> tuple[np.ndarray | None, int, str | None]:
        try:
            img, target = ds[i]
        except (OSError, ValueError, SyntaxError) as err:  # a corrupt file behind item i
            return None, -1, f"item {i} ({err.__class__.__name__}: {err})"
        if not isinstance(target, (int, np.integer)) and not (
            isinstance(target, torch.Tensor) and target.numel() == 1
        ):
            raise TaskError(f"{where}: targets are {type(target).__name__}, not class indices")
        return to_array(img, opts.size), int(target), None

    items = map_items(item, len(ds), desc=f"decode {where}")
    errors = [e for _, _, e in items if e is not None]
    warn_skipped(where, errors)
    ok = [(a, t) for a, t, e in items if e is None]
    x = stack([a for a, _ in ok], opts.size, where)
    return x, np.asarray([t for _, t in ok], dtype=np.int64)


def _unify(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Give every split the same channels and size (3 channels if any split has colour)."""
    channels = max(x.shape[1] for x, _ in parts.values())
    sizes = {x.shape[2:] for x, _ in parts.values()}
    side = max(max(s) for s in sizes)
    for split, (x, y) in parts.items():
        if len(sizes) > 1 and x.shape[2:] != (side, side):
            x = _resize_array(x, side)
        if x.shape[1] != channels:
            x = np.repeat(x, channels, axis=1)
        parts[split] = (x, y)


def class_names_of(datasets: dict[str, Any], labels: np.ndarray) -> list[str]:
    classes = getattr(next(iter(datasets.values())), "classes", None)
    top = int(labels.max()) + 1 if labels.size else 0
    if isinstance(classes, (list, tuple)) and len(classes) >= top:
        return [str(c) for c in classes]
    return [str(i) for i in range(top)]


def load_dataset_task(
    cls_name: str,
    root: Path,
    opts: SourceOptions,
    spec: str,
    max_per_class: int | None = None,
) -> TaskData:
    """A task from a torchvision dataset class opened at ``root`` (see the module docstring)."""
    cls = dataset_class(cls_name, spec)
    datasets = open_splits(cls, root, opts, spec)
    parts = {s: read_split(ds, opts, f"task {spec!r} ({s})") for s, ds in datasets.items()}
    _unify(parts)
    labels = np.concatenate([y for _, y in parts.values()])
    if labels.size and int(labels.min()) < 0:
        raise TaskError(f"task {spec!r}: {cls_name} has negative labels; it is not classification")
    class_names = class_names_of(datasets, labels)
    first = "pool" if "pool" in parts else "train"
    x, y = parts[first]
    _, vf, tf = opts.split
    val = opts.val or (VAL_FRACTION if first == "train" else vf)
    carve_val = "val" not in parts
    carve_test = "test" not in parts
    tr, va, te = stratified_split(
        y, val if carve_val else 0.0, tf if carve_test else 0.0, opts.seed
    )
    splits = {"train": (x[tr], y[tr])}
    splits["val"] = (x[va], y[va]) if carve_val else parts["val"]
    splits["test"] = (x[te], y[te]) if carve_test else parts["test"]
    own = ", ".join(s for s in ("train", "val", "test") if s in parts) or "none"
    carved = [s for s, c in (("val", carve_val), ("test", carve_test)) if c]
    policy = f"{cls_name}'s own splits: {own}" + (
        f"; {' and '.join(carved)} drawn per class from {first} (seeded, val {val:.0%}"
        + (f", test {tf:.0%})" if carve_test else ")")
        if carved
        else ""
    )
    info = {
        "source": "torchvision",
        "dataset": cls_name,
        "policy": policy,
        **opts.to_info(),
        "val": val if carve_val else None,
    }
    name = opts.name or task_name(cls_name)
    return make_task(name, spec, class_names, splits, max_per_class, info)
