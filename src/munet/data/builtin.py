"""Built-in offline tasks, the pretraining corpus, and ``load_task`` (task spec -> TaskData).

Every built-in task has fixed train/validation/test splits derived from a recorded seed; the
test split is never used for selection. Glyph tasks are rendered once and cached on disk.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from munet.data import charsets, glyphs
from munet.data.cache import load_arrays, resolve_cache_dir, save_arrays
from munet.data.catalog import CATALOG, list_builtin_tasks
from munet.data.task import SPLITS, TaskData
from munet.errors import TaskError
from munet.progress import Progress

logger = logging.getLogger(__name__)

FASHION_MNIST_ENV = "MUNET_FASHION_MNIST_DIR"
FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MNIST_VAL_FRACTION = 0.05
DIGITS_VAL_FRACTION = 0.1
DIGITS_TEST_FRACTION = 0.1

PathLike = str | os.PathLike
Loader = Callable[[Path | None, int, "int | None"], TaskData]


@dataclass(frozen=True)
class GlyphSpec:
    """A rendered glyph task: its classes and images per class in train/val/test."""

    chars: tuple[str, ...]
    per_class: tuple[int, int, int]


GLYPH_TASKS: dict[str, GlyphSpec] = {
    "glyph_digits": GlyphSpec(charsets.GLYPH_DIGITS, (500, 60, 60)),
    "glyph_latin": GlyphSpec(charsets.GLYPH_LATIN, (400, 60, 60)),
    "glyph_greek": GlyphSpec(charsets.GLYPH_GREEK, (400, 60, 60)),
    "glyph_symbols": GlyphSpec(charsets.GLYPH_SYMBOLS, (400, 60, 60)),
    "pretrain_glyphs": GlyphSpec(charsets.PRETRAIN_GLYPHS, (200, 20, 20)),
}


@dataclass(frozen=True)
class BuiltinTask:
    """A registry entry: ``load(cache_dir, seed, max_per_class) -> TaskData``."""

    name: str
    description: str
    load: Loader
    seed: int = 0
    listed: bool = True


def _entropy(seed: int, name: str, *extra: int) -> list[int]:
    """SeedSequence entropy for (seed, task name, ...): stable across runs and platforms."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TaskError(f"seed {seed!r} is invalid; use a non-negative integer")
    return [int(seed), zlib.crc32(name.encode()), *extra]


def seeded_split(
    n: int, n_val: int, n_test: int, seed: int, name: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, val, test) index arrays covering range(n), from a seeded permutation."""
    if n_val + n_test >= n:
        raise TaskError(f"task {name!r} has {n} examples, too few for {n_val} val + {n_test} test")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(_entropy(seed, name))))
    perm = rng.permutation(n)
    return perm[n_val + n_test :], perm[:n_val], perm[n_val : n_val + n_test]


def cap_per_class(idx: np.ndarray, labels: np.ndarray, max_per_class: int | None) -> np.ndarray:
    """The first ``max_per_class`` entries of ``idx`` of every class (order kept)."""
    if max_per_class is None:
        return idx
    if max_per_class < 1:
        raise TaskError(f"max_per_class={max_per_class} is invalid; use a positive integer")
    lab = labels[idx]
    rank = np.zeros(idx.shape[0], dtype=np.int64)
    for c in np.unique(lab):
        where = np.flatnonzero(lab == c)
        rank[where] = np.arange(where.size)
    return idx[rank < max_per_class]


def _make_task(
    name: str,
    class_names: Sequence[str],
    arrays: dict[str, np.ndarray],
    info: dict,
) -> TaskData:
    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}
    for s in SPLITS:
        tensors[f"{s}_y"] = tensors[f"{s}_y"].to(torch.int64)
    return TaskData(
        name=name,
        spec=f"builtin:{name}",
        class_names=list(class_names),
        split_info={"source": "builtin", **info},
        **tensors,
    )


def _index_task(
    name: str,
    class_names: Sequence[str],
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    max_per_class: int | None,
    info: dict,
) -> TaskData:
    """Build a TaskData from per-split (x source, y source, index) triples."""
    arrays = {}
    for s in SPLITS:
        xs, ys, idx = parts[s]
        idx = cap_per_class(idx, ys, max_per_class)
        arrays[f"{s}_x"], arrays[f"{s}_y"] = xs[idx], ys[idx]
    return _make_task(name, class_names, arrays, {**info, "max_per_class": max_per_class})


# ----------------------------------------------------------------------------- Fashion-MNIST


def fashion_mnist_dir() -> Path:
    """``$MUNET_FASHION_MNIST_DIR`` if set, else the Debian package's folder."""
    return Path(os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR)


def _idx_path(folder: Path, stem: str) -> Path:
    for cand in (folder / f"{stem}.gz", folder / stem):
        if cand.is_file():
            return cand
    raise TaskError(
        f"fashion_mnist data missing: {folder / (stem + '.gz')} not found; install it with "
        f"`sudo apt-get install -y dataset-fashion-mnist` (files go to {FASHION_MNIST_DIR}) "
        f"or set {FASHION_MNIST_ENV} to a folder holding the idx .gz files"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (optionally gzipped) of unsigned bytes into a uint8 array."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise TaskError(f"cannot read idx file {path}: {err}; reinstall the dataset") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise TaskError(f"{path} is not an idx file of unsigned bytes; reinstall the dataset")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = struct.unpack(f">{ndim}I", data[4:header]) if len(data) >= header else ()
    if len(dims) != ndim or len(data) - header != int(np.prod(dims, dtype=np.int64)):
        raise TaskError(f"{path} is truncated or malformed (dims {dims}); reinstall the dataset")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_fashion_mnist(cache_dir: Path | None, seed: int, max_per_class: int | None) -> TaskData:
    name = "fashion_mnist"
    folder = fashion_mnist_dir()
    arrays = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(_idx_path(folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(_idx_path(folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise TaskError(
                f"fashion_mnist {prefix} files in {folder} disagree: images {images.shape}, "
                f"labels {labels.shape}; reinstall the dataset"
            )
        if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
            raise TaskError(f"fashion_mnist {prefix} labels exceed 9 in {folder}; reinstall it")
        arrays[split] = (images[:, None], labels.astype(np.int64))
    (tx, ty), (ex, ey) = arrays["train"], arrays["test"]
    n_val = max(1, round(FASHION_MNIST_VAL_FRACTION * ty.shape[0]))
    tr, va, _ = seeded_split(ty.shape[0], n_val, 0, seed, name)
    parts = {
        "train": (tx, ty, tr),
        "val": (tx, ty, va),
        "test": (ex, ey, np.arange(ey.shape[0])),
    }
    policy = "val = seeded 5% of the idx train set, train = the rest, test = t10k"
    info = {"policy": policy, "seed": seed, "data_dir": str(folder)}
    return _index_task(name, FASHION_MNIST_CLASSES, parts, max_per_class, info)


# ----------------------------------------------------------------------------- sklearn digits


def _load_digits(cache_dir: Path | None, seed: int, max_per_class: int | None) -> TaskData:
    from sklearn.datasets import load_digits

    name = "digits"
    d = load_digits()
    x = np.round(d.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]
    y = d.target.astype(np.int64)
    n = y.shape[0]
    n_val, n_test = round(DIGITS_VAL_FRACTION * n), round(DIGITS_TEST_FRACTION * n)
    tr, va, te = seeded_split(n, n_val, n_test, seed, name)
    parts = {"train": (x, y, tr), "val": (x, y, va), "test": (x, y, te)}
    info = {"policy": "seeded permutation: 80% train / 10% val / 10% test", "seed": seed}
    return _index_task(name, [str(i) for i in range(10)], parts, max_per_class, info)


# ----------------------------------------------------------------------------- glyph tasks


def glyph_cache_path(
    cache_dir: Path, name: str, seed: int, counts: Sequence[int], chars: Sequence[str]
) -> Path:
    """Cache file of a rendered glyph task; the name changes with renderer version and inputs."""
    n = "-".join(str(c) for c in counts)
    key = glyphs.renderer_key(chars)
    return cache_dir / f"{name}-r{glyphs.RENDER_VERSION}-s{seed}-n{n}-{key}.npz"


def render_glyph_task(
    name: str,
    cache_dir: PathLike | None = None,
    seed: int = 0,
    max_per_class: int | None = None,
    train_per_class: int | None = None,
) -> TaskData:
    """Render (or load from the cache) the glyph task ``name`` of ``GLYPH_TASKS``.

    ``train_per_class`` replaces the spec's training count (a larger corpus); the validation and
    test splits are drawn from their own seeds, so they stay the same whatever it is.
    """
    if name not in GLYPH_TASKS:
        raise TaskError(f"unknown glyph task {name!r}; known: {', '.join(GLYPH_TASKS)}")
    gspec = GLYPH_TASKS[name]
    if max_per_class is not None and max_per_class < 1:
        raise TaskError(f"max_per_class={max_per_class} is invalid; use a positive integer")
    per_class = gspec.per_class
    if train_per_class is not None:
        per_class = (train_per_class, *per_class[1:])
    counts = tuple(c if max_per_class is None else min(c, max_per_class) for c in per_class)
    entropy = _entropy(seed, name)
    folder = resolve_cache_dir(cache_dir)
    path = glyph_cache_path(folder, name, seed, counts, gspec.chars)
    keys = tuple(f"{s}_{v}" for s in SPLITS for v in "xy")
    arrays = load_arrays(path, keys)
    sizes = [len(gspec.chars) * c for c in counts]
    if arrays is None or [arrays[f"{s}_y"].shape[0] for s in SPLITS] != sizes:
        logger.info(f"task {name}: rendering {sum(sizes)} glyphs on first use (cached in {path})")
        arrays = {}
        with Progress(sum(sizes), f"render {name}", unit="img", logger=logger) as count:
            for i, (s, c) in enumerate(zip(SPLITS, counts, strict=True)):
                arrays[f"{s}_x"], arrays[f"{s}_y"] = glyphs.render_split(
                    gspec.chars, c, [*entropy, i], count.advance
                )
        save_arrays(path, arrays)
    else:
        logger.debug(f"task {name}: glyphs read from the cache {path}")
    info = {
        "policy": "independently rendered splits (seed entropy [seed, crc32(name), split])",
        "seed": seed,
        "per_class": dict(zip(SPLITS, counts, strict=True)),
        "render_version": glyphs.RENDER_VERSION,
        "renderer_key": glyphs.renderer_key(gspec.chars),
        "max_per_class": max_per_class,
    }
    return _make_task(name, gspec.chars, arrays, info)


def load_pretrain_corpus(
    cache_dir: PathLike | None = None,
    seed: int = 0,
    *,
    max_per_class: int | None = None,
    train_per_class: int | None = None,
) -> TaskData:
    """The root-pretraining glyph corpus: 175 classes disjoint from every built-in task."""
    return render_glyph_task("pretrain_glyphs", cache_dir, seed, max_per_class, train_per_class)


def _glyph_loader(name: str) -> Loader:
    def load(cache_dir: Path | None, seed: int, max_per_class: int | None) -> TaskData:
        return render_glyph_task(name, cache_dir, seed, max_per_class)

    return load


# ----------------------------------------------------------------------------- registry

_LOADERS: dict[str, Loader] = {
    "fashion_mnist": _load_fashion_mnist,
    "digits": _load_digits,
    **{name: _glyph_loader(name) for name in GLYPH_TASKS},
}
BUILTIN_TASKS: dict[str, BuiltinTask] = {
    name: BuiltinTask(name, entry.description, _LOADERS[name], listed=entry.listed)
    for name, entry in CATALOG.items()
}


def normalize_name(name: str) -> str:
    """Lower-case, '-' -> '_', surrounding whitespace removed."""
    return name.strip().lower().replace("-", "_")


def load_builtin(
    name: str,
    cache_dir: PathLike | None = None,
    *,
    seed: int | None = None,
    max_per_class: int | None = None,
) -> TaskData:
    """Load built-in task ``name``; ``seed`` defaults to the task's recorded seed."""
    key = normalize_name(name)
    if key not in BUILTIN_TASKS:
        known = ", ".join(n for n, _ in list_builtin_tasks())
        raise TaskError(f"unknown built-in task {name!r}; known tasks: {known}")
    entry = BUILTIN_TASKS[key]
    folder = resolve_cache_dir(cache_dir)
    return entry.load(folder, entry.seed if seed is None else seed, max_per_class)
