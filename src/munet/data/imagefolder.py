"""``imagefolder:<dir>[?options]``: a task from folders of images, one folder per class.

Layouts:

- **split folders**: ``<dir>`` has a ``train/`` folder, and optionally ``val/`` (or ``valid/``,
  ``validation/``) and ``test/``, each holding the same class folders; other folders beside them
  are ignored. A missing validation or test split is carved from ``train/``, stratified and
  seeded, with the shares of ``split`` (default 10% each; ``val=f`` overrides the validation
  share).
- **class folders**: ``<dir>`` holds one folder per class; the images are split per class with
  a recorded seed, ``split=80,10,10`` by default.

Decisions:

- Class names are the folder names, sorted (that order is the label order); entries starting
  with ``.`` are ignored; images are found recursively inside a class folder; files whose
  suffix is not an image suffix (``.jpg .jpeg .png .bmp .gif .tif .tiff .webp .ppm .pgm
  .pbm``) are ignored.
- The class folders of ``train/``, ``val/`` and ``test/`` must have the same names; otherwise
  the task is refused, naming the classes that differ.
- **Unreadable or corrupt images are skipped**: a warning names the first three and the count,
  and the count is recorded in the task's split info.
- **A class with no readable image is refused** (in the class-folder layout or in ``train/``):
  dropping it silently would change the class count. In ``val/`` or ``test/`` an empty class
  folder is allowed.
- Images are decoded once with PIL into uint8 (colour and size rules in
  :mod:`munet.data.decode`) and the result is cached in the munet data cache, keyed by every
  file's path, size and modification time; the split info holds no absolute path, so a moved
  folder is the same task.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from munet.data.cache import load_arrays, resolve_cache_dir, save_arrays
from munet.data.decode import IMAGE_SUFFIXES, decode_files, stack, warn_skipped
from munet.data.sources import (
    SourceOptions,
    make_task,
    parse_options,
    split_location,
    stratified_split,
    task_name,
)
from munet.data.task import SPLITS, TaskData
from munet.errors import TaskError

logger = logging.getLogger(__name__)

SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
CACHE_VERSION = 1
PathLike = str | os.PathLike


def load_imagefolder(
    rest: str, cache_dir: PathLike | None, *, max_per_class: int | None = None
) -> TaskData:
    """The ``imagefolder:`` source: ``rest`` is ``<dir>[?options]``."""
    location, query = split_location(rest)
    spec = f"imagefolder:{rest}"
    if not location:
        raise TaskError(f"task spec {spec!r} names no folder; use imagefolder:<dir>")
    opts = parse_options(query, spec)
    return load_folder_task(Path(location).expanduser(), None, opts, spec, cache_dir, max_per_class)


def find_split_folders(root: Path, spec: str) -> dict[str, Path] | None:
    """``{"train": ..., "val": ..., "test": ...}`` (present ones) if ``root`` has ``train/``."""
    if not root.is_dir():
        raise TaskError(f"task {spec!r}: folder {root} does not exist; check the path")
    if not (root / "train").is_dir():
        return None
    found: dict[str, Path] = {}
    for entry in sorted(root.iterdir()):
        split = SPLIT_FOLDERS.get(entry.name)
        if split is None or not entry.is_dir():
            continue
        if split in found:
            raise TaskError(
                f"task {spec!r}: both {found[split].name}/ and {entry.name}/ in {root}; keep one "
                "validation folder"
            )
        found[split] = entry
    return found


def scan_classes(folder: Path, spec: str) -> dict[str, list[Path]]:
    """Class name -> image files (sorted by relative path) under ``folder``."""
    if not folder.is_dir():
        raise TaskError(f"task {spec!r}: folder {folder} does not exist; check the path")
    classes = sorted(e.name for e in folder.iterdir() if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise TaskError(
            f"task {spec!r}: {folder} has no class folders; put each class's images in a "
            "sub-folder named after the class (or use train/, val/, test/ of class folders)"
        )
    out: dict[str, list[Path]] = {}
    for name in classes:
        files = []
        # links are followed, but each real folder is walked once: a link loop (loop -> .)
        # cannot multiply the images
        visited: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(folder / name, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in visited:
                dirnames[:] = []
                continue
            visited.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files += [
                Path(dirpath) / f
                for f in filenames
                if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
            ]
        out[name] = _unique_files(sorted(files, key=lambda p: p.relative_to(folder).as_posix()))
    return out


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None  # unreadable: decoding skips it with a warning
    return st.st_dev, st.st_ino


def _unique_files(files: list[Path]) -> list[Path]:
    """Each real file once (the first name in order): links to one image are one image."""
    seen: set[tuple[int, int]] = set()
    out = []
    for f in files:
        key = _file_key(f)
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        out.append(f)
    return out


def _refuse_shared_files(found: Mapping[str, dict[str, list[Path]]], spec: str) -> None:
    """One real file in two classes or two splits would be a contradictory label or a test
    image the model trained on: refused, naming both places."""
    where: dict[tuple[int, int], tuple[str, str, Path]] = {}
    for split, classes in found.items():
        for name, files in classes.items():
            for f in files:
                key = _file_key(f)
                if key is None:
                    continue
                if key in where:
                    s0, c0, f0 = where[key]
                    raise TaskError(
                        f"task {spec!r}: {f0} and {f} are the same file (split {s0}/class "
                        f"{c0!r} and split {split}/class {name!r}); keep one copy"
                    )
                where[key] = (split, name, f)


def _check_same_classes(found: Mapping[str, dict[str, list[Path]]], spec: str) -> list[str]:
    names = list(found["train"])
    for split, classes in found.items():
        if list(classes) != names:
            missing = sorted(set(names) - set(classes))
            extra = sorted(set(classes) - set(names))
            raise TaskError(
                f"task {spec!r}: class folders of {split}/ differ from train/ (missing "
                f"{missing[:5]}, extra {extra[:5]}); every split needs the same class folders"
            )
    return names


def load_folder_task(
    root: Path | None,
    folders: Mapping[str, Path] | None,
    opts: SourceOptions,
    spec: str,
    cache_dir: PathLike | None = None,
    max_per_class: int | None = None,
) -> TaskData:
    """A task from ``root`` (either layout) or from explicit split ``folders`` (a task file)."""
    if folders is None:
        assert root is not None
        folders = find_split_folders(root, spec)
    layout = "split-folders" if folders else "class-folders"
    parts = dict(folders) if folders else {"pool": root}
    found = {split: scan_classes(Path(folder), spec) for split, folder in parts.items()}
    _refuse_shared_files(found, spec)
    if layout == "split-folders" and "train" not in found:
        raise TaskError(f"task {spec!r}: no train folder given; a task needs train images")
    class_names = _check_same_classes(found, spec) if folders else list(found["pool"])
    first = "train" if folders else "pool"
    for name, files in found[first].items():
        if not files:
            raise TaskError(
                f"task {spec!r}: class folder {Path(parts[first]) / name} has no images; add "
                "images or remove the folder"
            )
    name = opts.name or task_name((root or Path(parts[first]).parent).resolve().name) or "task"
    x, y, part, skipped = _decode_cached(found, opts, cache_dir, name)
    warn_skipped(f"task {name}", skipped.tolist())
    order = list(parts)
    base = np.flatnonzero(part == order.index(first))
    for c in range(len(class_names)):
        if not (y[base] == c).any():
            raise TaskError(
                f"task {spec!r}: no readable image of class {class_names[c]!r} in "
                f"{parts[first]}; fix or remove its files"
            )
    _, vf, tf = opts.split
    vf = opts.val or vf
    splits: dict[str, np.ndarray] = {}
    carved = [s for s in ("val", "test") if s not in parts]
    if carved:
        tr, va, te = stratified_split(
            y[base], vf if "val" in carved else 0.0, tf if "test" in carved else 0.0, opts.seed
        )
        splits["train"] = base[tr]
        if "val" in carved:
            splits["val"] = base[va]
        if "test" in carved:
            splits["test"] = base[te]
    else:
        splits["train"] = base
    for s in SPLITS:
        if s in parts and s != "train":
            splits[s] = np.flatnonzero(part == order.index(s))
    if layout == "class-folders":
        policy = f"seeded stratified split of the class folders, shares {_pct(1 - vf - tf, vf, tf)}"
    else:
        policy = "train/val/test folders" + (
            f"; {' and '.join(carved)} carved from train/ (seeded, stratified, "
            f"val {vf:.0%} / test {tf:.0%})"
            if carved
            else ""
        )
    info = {
        "source": "imagefolder",
        "layout": layout,
        "policy": policy,
        **opts.to_info(),
        "skipped_unreadable": int(skipped.size),
    }
    return make_task(
        name, spec, class_names, {s: (x[i], y[i]) for s, i in splits.items()}, max_per_class, info
    )


def _pct(*shares: float) -> str:
    return "/".join(f"{s:.0%}" for s in shares)


def _decode_cached(
    found: Mapping[str, dict[str, list[Path]]],
    opts: SourceOptions,
    cache_dir: PathLike | None,
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x uint8 [N, C, H, W], labels, part index, skipped file names) of every image."""
    files: list[Path] = []
    labels: list[int] = []
    part: list[int] = []
    manifest = []
    for p, classes in enumerate(found.values()):
        for c, paths in enumerate(classes.values()):
            for path in paths:
                st = path.stat()
                files.append(path)
                labels.append(c)
                part.append(p)
                manifest.append([p, c, str(path.resolve()), st.st_size, st.st_mtime_ns])
    key = hashlib.sha256(
        json.dumps([CACHE_VERSION, str(opts.size), manifest]).encode()
    ).hexdigest()[:24]
    cache = resolve_cache_dir(cache_dir) / "imagefolder" / f"{name}-{key}.npz"
    keys = ("x", "y", "part", "skipped")
    arrays = load_arrays(cache, keys)
    if arrays is not None:
        return arrays["x"], arrays["y"], arrays["part"], arrays["skipped"]
    logger.info(f"task {name}: decoding {len(files)} images on first use (cached in {cache})")
    decoded, errors = decode_files(files, opts.size, desc=f"decode {name}")
    ok = [i for i, a in enumerate(decoded) if a is not None]
    x = stack([decoded[i] for i in ok], opts.size, f"task {name}")
    arrays = {
        "x": x,
        "y": np.asarray([labels[i] for i in ok], dtype=np.int64),
        "part": np.asarray([part[i] for i in ok], dtype=np.int64),
        "skipped": np.asarray(errors, dtype=str),
    }
    save_arrays(cache, arrays, compress=False)
    return arrays["x"], arrays["y"], arrays["part"], arrays["skipped"]
