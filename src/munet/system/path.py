"""Paths: a task's model as an ordered list of components plus hyperparameters (spec §1.2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from munet.system.component import Component


@dataclass(eq=False)
class Path:
    """A task model. ``metrics`` holds measured values (quality, history, test accuracy…);
    ``generation`` and ``offspring`` are the algorithm's bookkeeping."""

    id: int
    task: str
    parent: Path | None
    hparams: dict[str, Any]
    components: list[Component]
    metrics: dict[str, Any] = field(default_factory=dict)
    generation: int = 0  # the parent's + 1; the root's is 0
    offspring: int = 0  # same-task children assembled from it (PPDecay parent selection)

    def component(self, name: str) -> Component | None:
        for c in self.components:
            if c.name == name:
                return c
        return None

    def ancestors(self) -> list[Path]:
        """Parent, grandparent, … up to the root."""
        out: list[Path] = []
        p = self.parent
        while p is not None:
            out.append(p)
            p = p.parent
        return out

    def trainable_components(self) -> list[Component]:
        return [c for c in self.components if c.trainable]

    def __repr__(self) -> str:
        return f"Path({self.id}, {self.task!r}, parent={self.parent.id if self.parent else None})"
