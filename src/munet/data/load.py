"""Load the tasks of a run by spec, and the metadata a system records about each."""

from __future__ import annotations

from typing import Any

from munet.errors import TaskError


def load_tasks(specs: list[str]) -> dict[str, Any]:
    """Load every task's data (before anything is written); names must be unique."""
    from munet.data.builtin import load_task

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
    return out


def task_meta(data: Any) -> dict[str, Any]:
    """What the journal records about a task: spec, class count and names, split info."""
    return {
        "spec": data.spec,
        "num_classes": data.num_classes,
        "class_names": list(data.class_names),
        "split": data.split_info,
    }
