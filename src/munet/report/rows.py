"""The per-task row of a retained path: tasks.csv, the table ``munet evolve`` prints, the
serving API's task info and (with its history) the report's :class:`~munet.report.summary.TaskRow`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from munet.system.component import NOT_TRAINABLE
from munet.system.path import Path
from munet.system.record import CandidateRecord
from munet.system.score import accounted_params, private_params
from munet.system.state import SystemState

if TYPE_CHECKING:
    from munet.store.system import SystemStore


def path_facts(path: Path) -> dict[str, Any]:
    """What every per-task row shows of a retained path (accounting is the state's current,
    dynamic one)."""
    return {
        "task": path.task,
        "path_id": path.id,
        "test_accuracy": path.metrics.get("test_quality"),
        "val_accuracy": path.metrics.get("quality"),
        "accounted_params": accounted_params(path),
        "private_params": private_params(path),
        "num_layers": path.hparams["num_layers"],
        "adapters": len(path.hparams.get("adapter_layers", [])),
        "image_size": path.hparams["ds_image_size"],
    }


def task_rows(state: SystemState) -> list[dict[str, Any]]:
    """One row per retained path: the per-task table of ``munet evolve`` and tasks.csv."""
    rows = []
    for paths in state.population.values():
        if not paths:
            continue
        p = paths[0]
        share = sharing(p)
        shared = sorted({t for users in share.values() for t in users})
        facts = path_facts(p)
        rows.append(
            {
                **facts,
                "accounted_params": int(round(facts["accounted_params"])),
                "private": ",".join(n for n, u in share.items() if not u),
                "components": " ".join(
                    f"{short_name(n)}={'+'.join(u) or 'private'}" for n, u in share.items()
                ),
                "shared_with": ",".join(shared),
                "generation": p.generation,
            }
        )
    return rows


def task_compute(records: Iterable[CandidateRecord]) -> dict[str, dict[str, float]]:
    """Per task, what its candidates cost: how many were trained, training images, seconds and
    FLOPs (training and validation; ``flops`` is 0 for systems that predate FLOP counting)."""
    out: dict[str, dict[str, float]] = {}
    for r in records:
        t = out.setdefault(r.task, {"candidates": 0, "images": 0, "seconds": 0.0, "flops": 0.0})
        t["candidates"] += 1
        t["images"] += int(r.images or 0)
        t["seconds"] += float(r.seconds or 0.0)
        t["flops"] += float(r.flops or 0.0)
    return out


def with_compute(
    rows: list[dict[str, Any]], records: Iterable[CandidateRecord]
) -> list[dict[str, Any]]:
    """``rows`` (:func:`task_rows`) with each task's compute (:func:`task_compute`) appended:
    the columns of tasks.csv."""
    compute = task_compute(records)
    empty = {"candidates": 0, "images": 0, "seconds": 0.0, "flops": 0.0}
    out = []
    for r in rows:
        c = compute.get(r["task"], empty)
        out.append(
            {
                **r,
                "candidates": int(c["candidates"]),
                "images": int(c["images"]),
                "seconds": round(c["seconds"], 3),
                "flops": c["flops"],
            }
        )
    return out


def sharing(path: Path) -> dict[str, list[str]]:
    """For each component of a path: the other users (tasks, or 'root'), empty if private."""
    out = {}
    for c in path.components:
        others = sorted(t for t in c.locks if t != path.task)
        out[c.name] = ["root" if t == NOT_TRAINABLE else t for t in others]
    return out


def short_name(name: str) -> str:
    """encoderblock_2 -> block2, residual_adapter_1 -> adapter1, posembed_input -> pos."""
    return (
        name.replace("encoderblock_", "block")
        .replace("residual_adapter_", "adapter")
        .replace("posembed_input", "pos")
        .replace("embedding", "embed")
        .replace("encoder_norm", "norm")
    )


class TasksCsv:
    """The store as the evolution loop's recorder, rewriting tasks.csv (retained paths and what
    each task's candidates cost) after every task iteration's snapshot; everything else goes to
    the store."""

    def __init__(self, store: SystemStore) -> None:
        self.store = store

    def iteration_done(self, state: SystemState, task: str, iteration: int) -> None:
        self.store.iteration_done(state, task, iteration)
        self.store.write_tasks_csv(with_compute(task_rows(state), self.store.candidate_rows()))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)
