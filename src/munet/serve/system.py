"""Use an evolved system: ``munet.load(DIR)`` -> :class:`MultitaskSystem`.

Loading is read-only: the journal and the component blobs are read once (no writer lock is
taken, so a system can be served while ``munet evolve`` grows it; what is served is its last
completed task iteration). Every task's model shares the component tensors of the system.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from munet.errors import StoreError, TaskError
from munet.model.vit import PathModel, build_model
from munet.serve.engine import Route, SharedPrefixRunner, route_of, shared_prefix
from munet.serve.images import prepare_images
from munet.system.arch import RootArch
from munet.system.path import Path

DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class TaskInfo:
    """What a caller needs to feed and read one task's model."""

    name: str
    class_names: list[str]
    channels: int  # 1 for gray tasks: RGB inputs are converted to luma first
    image_size: int


def task_info(name: str, meta: Mapping[str, Any], hparams: Mapping[str, Any]) -> TaskInfo:
    """TaskInfo from recorded task metadata (``SystemStore.tasks()``) and a path's hparams."""
    n = int(hparams["num_classes"])
    names = [str(c) for c in meta.get("class_names", [])]
    if len(names) != n:
        names = [str(i) for i in range(n)]
    shape = meta.get("split", {}).get("image_shape") or [3]
    return TaskInfo(name, names, 1 if int(shape[0]) == 1 else 3, int(hparams["ds_image_size"]))


def predictions(logits: torch.Tensor, class_names: Sequence[str], top_k: int) -> list[dict]:
    """Logits [N, C] -> one dict per image: label, class_name, probability, top_k list."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r} is invalid; use a positive integer")
    probs = torch.softmax(logits.float(), dim=-1)
    k = min(top_k, probs.shape[-1])
    values, labels = probs.topk(k, dim=-1)
    out = []
    for vals, labs in zip(values.tolist(), labels.tolist(), strict=True):
        top = [
            {"label": lab, "class_name": class_names[lab], "probability": val}
            for val, lab in zip(vals, labs, strict=True)
        ]
        out.append({**top[0], "top_k": top})
    return out


class MultitaskSystem:
    """Read-only view of an evolved system for inference (see :func:`load`).

    ``batch_size`` is the number of images per forward call: inputs are padded to a multiple of
    it so that an image's logits never depend on the other images in its batch.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        arch: RootArch,
        paths: Mapping[str, Path],
        task_meta: Mapping[str, Mapping[str, Any]],
        rows: Mapping[str, Mapping[str, Any]],
        device: str = "cpu",
        batch_size: int = DEFAULT_BATCH_SIZE,
        damaged: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = str(directory)
        #: task -> why it cannot be used (a damaged blob); the other tasks work.
        self.damaged = dict(damaged or {})
        self.arch = arch
        self.device = str(device)
        self.batch_size = int(batch_size)
        self._paths = dict(paths)
        self._meta = {t: dict(task_meta.get(t, {})) for t in self._paths}
        self._rows = {t: dict(rows.get(t, {})) for t in self._paths}
        self._info = {t: task_info(t, self._meta[t], p.hparams) for t, p in self._paths.items()}
        self._models: dict[str, PathModel] = {
            t: build_model(arch, p.hparams, p.components, trainable=False)
            for t, p in self._paths.items()
        }
        self._routes: dict[str, Route] = {
            t: route_of(p, self._models[t]) for t, p in self._paths.items()
        }
        self.runner = SharedPrefixRunner(self._routes, self.batch_size, self.device)

    # ---- what the system holds ---------------------------------------------------------------
    @property
    def tasks(self) -> list[str]:
        """Names of the usable tasks, in the order they were added (see :attr:`damaged`)."""
        return list(self._paths)

    def _check(self, task: str) -> str:
        if task in self.damaged:
            raise StoreError(f"task {task!r} cannot be used: {self.damaged[task]}")
        if task not in self._paths:
            raise TaskError(
                f"unknown task {task!r}; this system has: {', '.join(self.tasks) or '(none)'}"
            )
        return task

    def task_info(self, task: str) -> TaskInfo:
        return self._info[self._check(task)]

    def classes(self, task: str) -> list[str]:
        """Class names of a task, index = label."""
        return list(self.task_info(task).class_names)

    def path(self, task: str) -> Path:
        """The task's retained path (components and hyperparameters)."""
        return self._paths[self._check(task)]

    def info(self, task: str) -> dict[str, Any]:
        """Accuracy, parameter counts and structure of a task's model."""
        p = self.path(task)
        row = self._rows[task]
        ti = self._info[task]
        return {
            "task": task,
            "spec": self._meta[task].get("spec"),
            "num_classes": len(ti.class_names),
            "classes": list(ti.class_names),
            "test_accuracy": p.metrics.get("test_quality"),
            "val_accuracy": p.metrics.get("quality"),
            "params": sum(c.size for c in p.components),
            "accounted_params": row.get("accounted_params"),
            "private_params": row.get("private_params"),
            "num_layers": int(p.hparams["num_layers"]),
            "adapter_layers": list(p.hparams.get("adapter_layers", [])),
            "lowrank_layers": list(p.hparams.get("lowrank_layers", [])),
            "image_size": ti.image_size,
            "channels": ti.channels,
            "shared_with": [s for s in str(row.get("shared_with", "")).split(",") if s],
            "path_id": p.id,
        }

    def model(self, task: str) -> PathModel:
        """The task's model (eval mode, no parameter requires grad). It shares its tensors with
        the system: ``copy.deepcopy`` it before changing weights."""
        p = self.path(task)
        model = build_model(self.arch, p.hparams, p.components, trainable=False)
        return model.to(self.device)

    # ---- inference ---------------------------------------------------------------------------
    def prepare(self, task: str, images: Any) -> torch.Tensor:
        """Images -> the task's model input, float [N, 3, S, S] in [-1, 1] on CPU."""
        ti = self.task_info(task)
        return prepare_images(images, ti.channels, ti.image_size)

    def logits(self, task: str, images: Any) -> torch.Tensor:
        """Logits [N, num_classes] (CPU) of a task's model on images (see :meth:`predict`)."""
        return self.runner.run({task: self.prepare(task, images)})[task]

    def predict(self, task: str, images: Any, top_k: int = 1) -> list[dict[str, Any]]:
        """Classify images with a task's model.

        ``images``: a PIL image, file path, bytes, uint8 tensor [C, H, W] / [N, C, H, W], float
        tensor in [-1, 1], or a sequence of these. Returns one dict per image:
        ``{"label", "class_name", "probability", "top_k": [{"label", "class_name",
        "probability"}, ...]}``.
        """
        return predictions(self.logits(task, images), self.classes(task), top_k)

    def logits_prepared(self, requests: Sequence[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
        """Logits of prepared inputs ``(task, float [n, 3, S, S])`` run as one mixed batch."""
        by_task: dict[str, list[int]] = {}
        for i, (task, _) in enumerate(requests):
            by_task.setdefault(self._check(task), []).append(i)
        inputs = {t: torch.cat([requests[i][1] for i in idx]) for t, idx in by_task.items()}
        out = self.runner.run(inputs)
        results: list[torch.Tensor] = [torch.empty(0)] * len(requests)
        for t, idx in by_task.items():
            sizes = [requests[i][1].shape[0] for i in idx]
            for i, part in zip(idx, out[t].split(sizes), strict=True):
                results[i] = part
        return results

    def logits_mixed(self, requests: Sequence[tuple[str, Any]]) -> list[torch.Tensor]:
        """Logits [num_classes] of each ``(task, image)`` request, computed as one batch."""
        prepared = [(task, self.prepare(task, image)) for task, image in requests]
        for (task, _), (_, x) in zip(requests, prepared, strict=True):
            if x.shape[0] != 1:
                raise TaskError(
                    f"each predict_mixed request holds one image; one for task {task!r} has "
                    f"{x.shape[0]}"
                )
        return [r[0] for r in self.logits_prepared(prepared)]

    def predict_mixed(
        self, requests: Sequence[tuple[str, Any]], top_k: int = 1
    ) -> list[dict[str, Any]]:
        """Classify ``[(task, image), ...]`` in one batch: requests are grouped by task and the
        frozen components that several tasks' paths share run once for all of them. Results
        (in request order) equal per-task :meth:`predict` exactly."""
        logits = self.logits_mixed(requests)
        return [
            predictions(row[None], self.classes(task), top_k)[0]
            for (task, _), row in zip(requests, logits, strict=True)
        ]

    def shared_stages(self, a: str, b: str) -> int:
        """How many leading forward stages two tasks' models share (computed once)."""
        return shared_prefix(self._routes[self._check(a)], self._routes[self._check(b)])

    def __repr__(self) -> str:
        return f"MultitaskSystem({self.directory!r}, tasks={self.tasks})"


def load(
    directory: str | os.PathLike, device: str = "cpu", batch_size: int = DEFAULT_BATCH_SIZE
) -> MultitaskSystem:
    """Open an evolved system for inference (read-only; no lock taken; blobs loaded once)."""
    from munet.report.rows import task_rows
    from munet.store.system import SystemStore

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TaskError(f"batch_size={batch_size!r} is invalid; use a positive integer")
    for _attempt in range(READ_ATTEMPTS):
        store = SystemStore(directory)
        before = _journal_size(store)
        store.read()
        state = store.load_state(load_tensors=False)
        paths, damaged = _load_paths(store, state, device)
        # a writer that snapshotted and collected garbage meanwhile: read the newer journal
        if not damaged or _journal_size(store) == before:
            break
    if damaged and not paths:
        raise StoreError(next(iter(damaged.values())))
    rows = {r["task"]: r for r in task_rows(state)}
    return MultitaskSystem(
        directory,
        state.arch,
        paths,
        store.tasks(),
        rows,
        device=device,
        batch_size=batch_size,
        damaged=damaged,
    )


#: Reads of the journal before a blob that is still missing counts as damage.
READ_ATTEMPTS = 3


def _journal_size(store: Any) -> int:
    try:
        return os.stat(store.journal.path).st_size
    except OSError:
        return -1


def _load_paths(store: Any, state: Any, device: str) -> tuple[dict[str, Path], dict[str, str]]:
    """Each task's retained path with its tensors on ``device``; a task whose blob is missing
    or damaged goes into the second dict with the problem instead."""
    paths: dict[str, Path] = {}
    damaged: dict[str, str] = {}
    failed: dict[int, str] = {}
    for task, candidates in state.population.items():
        if not candidates:
            continue
        path = candidates[0]
        for c in path.components:
            if c.params is None and c.id not in failed:
                try:
                    params = store.blobs.get(c.id, store.blob_records[c.id])
                    c.params = {k: v.to(device) for k, v in params.items()}
                except StoreError as err:
                    failed[c.id] = str(err)
            if c.id in failed:
                damaged[task] = failed[c.id]
                break
        else:
            paths[task] = path
    return paths, damaged
