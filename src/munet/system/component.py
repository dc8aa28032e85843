"""Components: the unit that is shared, frozen or cloned (spec §1.1, §1.3)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from munet.system.arch import Shapes, numel

#: Pseudo-task that locks the root's components forever.
NOT_TRAINABLE = "NOT_TRAINABLE"


@dataclass(eq=False)
class Component:
    """One named block of parameters with a unique id and a set of train locks.

    ``params`` is opaque to the algorithm (a dict of tensors in the torch layer, ``None`` in pure
    tests). A component is trainable only while its lock set is empty; a child never trains an
    inherited component in place: it gets a copy with a new id.
    """

    id: int
    name: str
    shapes: Shapes
    locks: set[str] = field(default_factory=set)
    origin: str = "new"
    params: Any = None

    @property
    def size(self) -> int:
        return numel(self.shapes)

    @property
    def trainable(self) -> bool:
        return not self.locks

    def user_tasks(self) -> set[str]:
        """Real tasks locking this component (the root pseudo-task excluded)."""
        return {t for t in self.locks if t != NOT_TRAINABLE}

    def __repr__(self) -> str:
        return f"Component({self.id}, {self.name!r}, locks={sorted(self.locks)})"
