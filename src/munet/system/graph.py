"""Copies of the component/path graph: a restored snapshot, a task agent's view of the system.

Paths point to their parents and share components by object identity; a copy rebuilds both
relations over new objects, so changing a copy's lock sets, metrics or parents never changes
the original (tensors are shared: components' parameters are never changed in place).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from munet.system.component import Component
from munet.system.path import Path


@dataclass(frozen=True)
class PathRow:
    """A path by ids: what a snapshot stores and what a copy starts from."""

    id: int
    task: str
    parent: int | None
    hparams: Mapping[str, Any]
    components: Sequence[int]
    metrics: Mapping[str, Any]
    generation: int = 0
    offspring: int = 0


def link_paths(
    rows: Iterable[PathRow], comps: Mapping[int, Component], root_id: int | None = None
) -> dict[int, Path]:
    """Paths over ``comps`` (own copies of hparams and metrics), parents linked by id.

    A parent that is not among the rows becomes the path ``root_id``; without one it is an
    error (KeyError).
    """
    rows = list(rows)
    paths = {
        r.id: Path(
            r.id,
            r.task,
            None,
            copy.deepcopy(dict(r.hparams)),
            [comps[i] for i in r.components],
            copy.deepcopy(dict(r.metrics)),
            r.generation,
            r.offspring,
        )
        for r in rows
    }
    for r in rows:
        if r.parent is not None:
            if root_id is None:
                paths[r.id].parent = paths[r.parent]
            else:
                paths[r.id].parent = paths.get(r.parent, paths[root_id])
    return paths


def copy_component(c: Component) -> Component:
    """The same component (id, name, origin, tensors) with its own shapes and lock set."""
    return Component(c.id, c.name, dict(c.shapes), set(c.locks), c.origin, c.params)


def copy_graph(
    components: Iterable[Component], paths: Iterable[Path], root: Path
) -> tuple[dict[int, Component], dict[int, Path]]:
    """Copies of ``components`` and of ``paths`` over them, by id; a parent outside ``paths``
    becomes the copy of ``root`` (which must be among them)."""
    comps = {c.id: copy_component(c) for c in components}
    rows = [
        PathRow(
            p.id,
            p.task,
            p.parent.id if p.parent else None,
            p.hparams,
            [c.id for c in p.components],
            p.metrics,
            p.generation,
            p.offspring,
        )
        for p in paths
    ]
    return comps, link_paths(rows, comps, root.id)
