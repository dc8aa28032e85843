"""What a worker does with candidates sent from the driver: rebuild them, train or test them.

Ray-free, so it is tested in-process; :mod:`munet.execute.ray_executor` wraps it in an actor.
A candidate travels as a :class:`CandidateSpec` (hyperparameters, component ids, names, shapes,
which are trainable, and the trainable components' initial tensors). Frozen components travel
separately, once per worker: they are immutable, so a worker caches them by component id.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from munet.errors import TaskError
from munet.system.arch import RootArch, Shapes
from munet.system.component import Component
from munet.system.evolve import CandidateResult
from munet.system.path import Path

#: Lock marking a component as frozen on a worker (the driver holds the real lock sets).
FROZEN = "frozen"

#: Test hook: a worker whose environment names this file exits abruptly (as if killed) on its
#: first job if the file does not exist yet, creating it so that the retry succeeds.
CRASH_ONCE_ENV = "MUNET_TEST_CRASH_ONCE"

Params = Any  # dict[str, torch.Tensor]; opaque here


@dataclass(frozen=True)
class ComponentSpec:
    id: int
    name: str
    shapes: Shapes
    trainable: bool
    origin: str = "new"  # the trainer probes only new heads, so a worker must know it


@dataclass
class CandidateSpec:
    """Everything a worker needs to rebuild one candidate, except its frozen components."""

    path_id: int
    task: str
    hparams: dict[str, Any]
    components: list[ComponentSpec]
    initial: dict[int, Params] = field(default_factory=dict)  # trainable components' tensors

    def frozen_ids(self) -> list[int]:
        return [c.id for c in self.components if not c.trainable]


def candidate_spec(path: Path) -> CandidateSpec:
    """The spec of a driver-side path (its trainable tensors are referenced, not copied)."""
    return CandidateSpec(
        path.id,
        path.task,
        dict(path.hparams),
        [
            ComponentSpec(c.id, c.name, dict(c.shapes), c.trainable, c.origin)
            for c in path.components
        ],
        {c.id: c.params for c in path.components if c.trainable},
    )


def frozen_components(paths: Sequence[Path]) -> dict[int, Component]:
    """The frozen components the paths use, by id (what a worker must have cached)."""
    return {c.id: c for p in paths for c in p.components if not c.trainable}


@dataclass(frozen=True)
class TaskSource:
    """How a worker loads a task itself: its spec and the driver's data fingerprint."""

    spec: str
    fingerprint: str


class TaskCache(Mapping[str, Any]):
    """Task data by name, loaded from each task's spec on first use and kept."""

    def __init__(self, sources: Mapping[str, TaskSource]) -> None:
        self.sources = dict(sources)
        self._data: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._data:
            from munet.data.load import load_task

            src = self.sources[name]
            data = load_task(src.spec)
            got = data.split_info.get("fingerprint")
            if data.name != name or got != src.fingerprint:
                raise TaskError(
                    f"task {name!r} ({src.spec}) loads differently on worker {os.uname()[1]} "
                    f"(name {data.name!r}, fingerprint {str(got)[:12]} vs the driver's "
                    f"{src.fingerprint[:12]}); give every node the same data and munet version"
                )
            self._data[name] = data
        return self._data[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sources)

    def __len__(self) -> int:
        return len(self.sources)


class WorkerCore:
    """One worker's state: task data, the frozen-component cache and an in-process Trainer.

    ``keep_calls``: a cached frozen component unused for that many jobs is dropped (the
    driver sends it again if it is ever needed).
    """

    def __init__(
        self,
        arch: RootArch,
        sources: Mapping[str, TaskSource],
        settings: Any,  # munet.train.trainer.TrainSettings
        keep_calls: int = 64,
    ) -> None:
        from munet.train.trainer import Trainer

        self.logs: list[str] = []
        self.trainer = Trainer(arch, TaskCache(sources), settings, log=self.logs.append)
        self.device = str(settings.device)
        self.frozen: dict[int, Params] = {}
        self._last_use: dict[int, int] = {}
        self._jobs = 0
        self.keep_calls = keep_calls

    def missing(self, ids: Sequence[int]) -> list[int]:
        """Frozen component ids this worker does not hold yet."""
        return [i for i in ids if i not in self.frozen]

    def add_frozen(self, params: Mapping[int, Params]) -> None:
        """Cache frozen components on the training device (copied there once, not per model)."""
        for cid, p in params.items():
            self.frozen[cid] = {k: v.to(self.device) for k, v in p.items()}

    def rebuild(self, spec: CandidateSpec, on_cpu: bool = False) -> Path:
        """A worker-side path: frozen components from the cache, trainable ones copied."""
        comps = []
        for c in spec.components:
            if c.trainable:
                params = {k: v.detach().clone() for k, v in spec.initial[c.id].items()}
                comps.append(Component(c.id, c.name, dict(c.shapes), set(), c.origin, params))
            else:
                self._last_use[c.id] = self._jobs
                params = self.frozen[c.id]
                if on_cpu:
                    params = {k: v.cpu() for k, v in params.items()}
                comps.append(Component(c.id, c.name, dict(c.shapes), {FROZEN}, c.origin, params))
        return Path(spec.path_id, spec.task, None, dict(spec.hparams), comps)

    def train(
        self, task: str, specs: Sequence[CandidateSpec], ds: Mapping[str, Any], seed: int
    ) -> tuple[list[CandidateResult], list[str]]:
        """Train the candidates in lock-step (as the local Trainer does); results and log lines."""
        self._start_job()
        paths = [self.rebuild(s) for s in specs]
        results = self.trainer.train_generation(task, paths, ds, seed)
        return results, self._finish_job()

    def test(self, spec: CandidateSpec) -> tuple[dict[str, Any], list[str]]:
        self._start_job()
        metrics = self.trainer.test(self.rebuild(spec, on_cpu=True))  # evaluation runs on CPU
        return metrics, self._finish_job()

    def _start_job(self) -> None:
        crash_once(os.environ.get(CRASH_ONCE_ENV))
        self._jobs += 1
        self.logs.clear()

    def _finish_job(self) -> list[str]:
        stale = [i for i, n in self._last_use.items() if self._jobs - n > self.keep_calls]
        for i in stale:
            self.frozen.pop(i, None)
            self._last_use.pop(i)
        return list(self.logs)


def crash_once(marker: str | None, exit_: Callable[[int], None] = os._exit) -> None:
    """The fault-injection hook of :data:`CRASH_ONCE_ENV` (tests only)."""
    if marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        exit_(1)


def with_device(settings: Any, device: str) -> Any:
    """A copy of TrainSettings running on ``device``."""
    return replace(settings, device=device)
