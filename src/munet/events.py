"""Typed progress events of ``munet.evolve``, for user callbacks (W&B, MLflow, your own log).

A callback is any ``callable(event)``; it receives, in order, a :class:`CandidateTrained` per
candidate (replayed ones included when a run resumes), an :class:`IterationEnded` per task
iteration and one :class:`RunEnded`::

    def log(event):
        if isinstance(event, munet.CandidateTrained):
            print(event.task, event.path_id, event.val_accuracy)

    munet.evolve("runs/demo", tasks=["builtin:digits"], callbacks=[log])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CandidateTrained:
    """One candidate path was trained (or replayed from the journal) and judged."""

    task: str
    iteration: int
    candidate: int  # index within its task iteration
    path_id: int
    parent_id: int
    parent_task: str
    mutations: tuple[str, ...]
    val_accuracy: float | None  # None: training diverged
    score: float | None
    accepted: bool
    seconds: float


@dataclass(frozen=True)
class IterationEnded:
    """A task iteration ended; ``best_path_id`` is the path the task keeps."""

    task: str
    iteration: int
    best_path_id: int
    val_accuracy: float
    test_accuracy: float


@dataclass(frozen=True)
class RunEnded:
    """``munet.evolve`` finished: one row per task, as in ``munet evolve``'s table."""

    directory: Path
    rows: tuple[Mapping[str, Any], ...]
    seconds: float
    trained: int  # candidates trained or replayed in this run


Event = CandidateTrained | IterationEnded | RunEnded
Callback = Callable[[Event], None]


class Progress:
    """Names of the untyped progress events ``munet.system.evolve`` emits as
    ``progress(name, **info)`` (what the printer, TensorBoard and :func:`typed_event` read).

    This module imports nothing from munet, so every layer may use these names.
    """

    ITERATION_START = "iteration_start"  # task, iteration, seeds (path ids)
    SEEDS_SCREENED = "seeds_screened"  # task, iteration, scores (path id -> score), kept, incumbent
    CANDIDATE = "candidate"  # record: a judged munet.system.record.CandidateRecord
    ITERATION_END = "iteration_end"  # task, iteration, best (the retained Path)


def typed_event(event: str, info: Mapping[str, Any]) -> Event | None:
    """The typed form of an evolution progress event, or None for events not offered."""
    if event == Progress.CANDIDATE:
        r = info["record"]  # a munet.system.record.CandidateRecord
        return CandidateTrained(
            task=r.task,
            iteration=r.iteration,
            candidate=r.candidate,
            path_id=r.path_id,
            parent_id=r.parent_id,
            parent_task=r.parent_task,
            mutations=tuple(r.mutations),
            val_accuracy=r.quality,
            score=r.score,
            accepted=r.accepted,
            seconds=r.seconds,
        )
    if event == Progress.ITERATION_END:
        best = info["best"]
        return IterationEnded(
            task=info["task"],
            iteration=info["iteration"],
            best_path_id=best.id,
            val_accuracy=best.metrics["quality"],
            test_accuracy=best.metrics["test_quality"],
        )
    return None
