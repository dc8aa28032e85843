"""``taskfile:<file.yaml>`` (or just ``<file.yaml>``): a task described in a YAML file.

```yaml
name: flowers                  # optional; default: the file's stem
source: imagefolder:photos     # a task spec; relative paths are relative to this file
splits:                        # optional
  train: photos/train          # explicit folders of class folders, instead of a folder source
  val: photos/val              # (val and test may be left out: they are carved from train)
  test: photos/test
  seed: 3                      # the split seed (default 0)
  fractions: [70, 15, 15]      # train/val/test shares of a source without fixed splits
  val_fraction: 0.05           # share of train held out when the source has no val split
class_names: [daisy, rose, tulip]  # optional: the label order; must name the source's classes
size: 64                       # optional storage size in pixels, or keep
```

``class_names`` reorders the labels when it lists the source's class names in another order;
for a source whose classes are bare numbers (e.g. SVHN) it names them, in label order.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.data.sources import parse_options, split_location, task_name
from munet.data.task import SPLITS, TaskData
from munet.errors import TaskError

KEYS = ("name", "source", "splits", "class_names", "size")
SPLIT_KEYS = ("train", "val", "test", "seed", "fractions", "val_fraction")
PathLike = str | os.PathLike


def load_taskfile(
    rest: str, cache_dir: PathLike | None, *, max_per_class: int | None = None
) -> TaskData:
    """The ``taskfile:`` source: ``rest`` is the path of the YAML file."""
    import yaml

    path = Path(rest).expanduser()
    spec = f"taskfile:{rest}"
    if not path.is_file():
        raise TaskError(f"task file {path} does not exist; check the path in {spec!r}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise TaskError(f"task file {path} is not valid YAML ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise TaskError(f"task file {path} must hold a mapping with name, source, splits, ...")
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise TaskError(f"task file {path}: unknown key(s) {unknown}; known: {', '.join(KEYS)}")
    splits = data.get("splits") or {}
    if not isinstance(splits, dict) or set(splits) - set(SPLIT_KEYS):
        raise TaskError(f"task file {path}: splits must be a mapping of {', '.join(SPLIT_KEYS)}")
    folders = {s: splits[s] for s in SPLITS if s in splits}
    here = path.parent
    name = task_name(str(data.get("name") or path.stem))
    options = {
        k: v
        for k, v in (
            ("name", name),
            ("seed", splits.get("seed")),
            ("split", splits.get("fractions")),
            ("val", splits.get("val_fraction")),
            ("size", data.get("size")),
        )
        if v is not None
    }
    where = f"task file {path}"
    source = data.get("source")
    if folders and source:
        raise TaskError(f"{where}: give either source or split folders (splits.train ...)")
    if not folders and not source:
        raise TaskError(f"{where} names no data; give source: <task spec> or splits: train: <dir>")
    if folders:
        from munet.data.imagefolder import load_folder_task

        dirs = {s: _resolve(here, str(d)) for s, d in folders.items()}
        opts = parse_options(options, where)
        task = load_folder_task(None, dirs, opts, spec, cache_dir, max_per_class)
    else:
        task = _load_source(str(source), here, options, spec, where, cache_dir, max_per_class)
    names = data.get("class_names")
    if names is not None:
        task = apply_class_names(task, names, where)
    return dataclasses.replace(task, name=name, spec=spec)


def _resolve(here: Path, location: str) -> Path:
    p = Path(location).expanduser()
    return p if p.is_absolute() else here / p


def _load_source(
    source: str,
    here: Path,
    options: dict[str, Any],
    spec: str,
    where: str,
    cache_dir: PathLike | None,
    max_per_class: int | None,
) -> TaskData:
    from munet.data.load import load_task, parse_spec

    prefix, rest = parse_spec(source)
    if prefix in ("imagefolder", "torchvision"):
        location, query = split_location(rest)
        merged = dict(parse_qsl_dict(query))
        merged.update(options)
        if prefix == "imagefolder":
            from munet.data.imagefolder import load_folder_task

            opts = parse_options(merged, where)
            return load_folder_task(
                _resolve(here, location), None, opts, spec, cache_dir, max_per_class
            )
        from munet.data.torchvision_source import load_dataset_task

        cls_name, _, root = location.partition(":")
        opts = parse_options(merged, where, allow_kwargs=True)
        return load_dataset_task(cls_name, _resolve(here, root), opts, spec, max_per_class)
    if prefix == "taskfile":
        raise TaskError(f"{where}: source may not be another task file")
    extra = sorted(set(options) - {"name"})
    if extra:
        raise TaskError(
            f"{where}: {', '.join(extra)} only apply to imagefolder: and torchvision: sources"
        )
    return load_task(source, cache_dir, max_per_class=max_per_class)


def parse_qsl_dict(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query, keep_blank_values=True))


def apply_class_names(task: TaskData, names: Any, where: str) -> TaskData:
    """Reorder (same names) or name (numeric source classes) the task's classes."""
    if not isinstance(names, Sequence) or isinstance(names, str):
        raise TaskError(f"{where}: class_names must be a list of names")
    names = [str(n) for n in names]
    if len(set(names)) != len(names):
        raise TaskError(f"{where}: class_names lists a name twice")
    have = list(task.class_names)
    numeric = have == [str(i) for i in range(len(have))]
    if set(names) == set(have):
        new_label = np.asarray([names.index(c) for c in have], dtype=np.int64)
    elif numeric and len(names) == len(have):
        new_label = np.arange(len(have), dtype=np.int64)
    else:
        missing, extra = sorted(set(have) - set(names)), sorted(set(names) - set(have))
        raise TaskError(
            f"{where}: class_names do not match the source's {len(have)} classes (missing "
            f"{missing[:5]}, unknown {extra[:5]})"
        )
    remap = torch.from_numpy(new_label)
    labels = {f"{s}_y": remap[task.split(s)[1]] for s in SPLITS}
    info = {k: v for k, v in task.split_info.items() if k != "fingerprint"}
    return dataclasses.replace(task, class_names=names, split_info=info, **labels)
