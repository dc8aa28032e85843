"""Load tasks by spec (the registry of task sources) and the metadata a system records.

Sources are imported on first use (torch, PIL, torchvision stay out of ``munet --help``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from munet.errors import TaskError

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from munet.data.task import TaskData

PathLike = str | os.PathLike


def load_tasks(specs: list[str]) -> dict[str, Any]:
    """Load every task's data (before anything is written); names must be unique."""
    out: dict[str, Any] = {}
    for spec in specs:
        data = load_task(spec)
        if data.name in out:
            raise TaskError(
                f"two task specs resolve to the same task name {data.name!r}; "
                "give each task a distinct name"
            )
        if data.num_classes < 2:
            raise TaskError(f"task {data.name!r} has {data.num_classes} class; a task needs >= 2")
        out[data.name] = data
        logger.debug(
            f"task {data.name} ({spec}): {data.num_classes} classes, train/val/test "
            f"{len(data.train_y)}/{len(data.val_y)}/{len(data.test_y)}"
        )
    return out


def task_meta(data: Any) -> dict[str, Any]:
    """What the journal records about a task: spec, class count and names, split info."""
    return {
        "spec": data.spec,
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "split": data.split_info,
    }


SourceLoader = Callable[..., "TaskData"]
_SOURCES: dict[str, SourceLoader] = {}


def register_source(prefix: str, loader: SourceLoader) -> None:
    """Plug in a task source: ``loader(rest_of_spec, cache_dir, max_per_class=...)``."""
    _SOURCES[prefix] = loader


def _lazy_source(module: str, attr: str) -> SourceLoader:
    """A loader that imports its module on first use (PIL, torchvision stay out of --help)."""

    def load(rest: str, cache_dir: PathLike | None, *, max_per_class: int | None = None):
        import importlib

        loader = getattr(importlib.import_module(module), attr)
        return loader(rest, cache_dir, max_per_class=max_per_class)

    return load


register_source("builtin", _lazy_source("munet.data.builtin", "load_builtin"))
register_source("imagefolder", _lazy_source("munet.data.imagefolder", "load_imagefolder"))
register_source("torchvision", _lazy_source("munet.data.torchvision_source", "load_torchvision"))
register_source("taskfile", _lazy_source("munet.data.taskfile", "load_taskfile"))
TASKFILE_SUFFIXES = (".yaml", ".yml")


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``prefix:rest``; a bare name means ``builtin:name``, a bare ``.yaml`` path a task
    file."""
    if not isinstance(spec, str) or not spec.strip():
        raise TaskError(f"task spec {spec!r} is empty; use e.g. builtin:fashion_mnist")
    spec = spec.strip()
    if ":" not in spec:
        if spec.lower().endswith(TASKFILE_SUFFIXES):
            return "taskfile", spec
        return "builtin", spec
    prefix, rest = spec.split(":", 1)
    return prefix.strip().lower(), rest.strip()


def load_task(
    spec: str, cache_dir: PathLike | None = None, *, max_per_class: int | None = None
) -> TaskData:
    """Load a task from its spec: ``builtin:<name>`` (or a bare ``<name>``),
    ``imagefolder:<dir>[?options]``, ``torchvision:<DatasetClass>:<root>[?options]`` or
    ``taskfile:<file.yaml>`` (or a bare ``<file.yaml>``).

    ``max_per_class`` keeps at most that many examples per class in each split (for quick runs).
    """
    prefix, rest = parse_spec(spec)
    if prefix not in _SOURCES:
        supported = ", ".join(f"{p}:" for p in _SOURCES)
        raise TaskError(
            f"unknown task source {prefix!r} in spec {spec!r}; supported prefixes: {supported} "
            "(e.g. builtin:fashion_mnist)"
        )
    return _SOURCES[prefix](rest, cache_dir, max_per_class=max_per_class)
