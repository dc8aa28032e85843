"""Candidate policies: how a task iteration picks its seed paths and builds a child from a
parent (muNet's here; the baselines' in :mod:`munet.system.baselines`).

Pure: plain Python over the core's data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from munet.system.assemble import assemble_child
from munet.system.path import Path
from munet.system.state import ParamOps, Settings, SystemState


class CandidatePolicy(Protocol):
    """How a task iteration picks its seed paths and builds a child from a parent.

    Implementations: muNet's (:data:`MUNET_POLICY`) and the baselines'
    (:class:`munet.system.baselines.BaselinePolicy`), passed to ``evolve(..., policy=...)``.

    The loop trains the seed paths first, one unmutated child each, then mutated children of
    parents chosen by PPDecay among the seeds and the task's accepted paths. An
    implementation must guarantee:

    - ``assemble`` takes new ids only from ``state`` (:meth:`SystemState.new_component`,
      :meth:`SystemState.new_path_id`) and never changes ``parent`` or an existing component
      (the loop itself counts the parent's offspring);
    - every random choice comes from ``rng`` (keyed by seed, task, iteration and candidate),
      so a resumed run rebuilds the same children with the same ids.
    """

    def seeds(self, state: SystemState, task: str) -> list[Path]:
        """Called once at the start of each task iteration; must unlock the task's retained
        components (:meth:`SystemState.begin_iteration`) and return the seed paths, in the
        order they are trained."""

    def assemble(
        self,
        state: SystemState,
        parent: Path,
        task: str,
        num_classes: int,
        ds: Mapping[str, Any],
        mutate: bool,
        rng: np.random.Generator,
        ops: ParamOps,
        settings: Settings,
    ) -> tuple[Path, list[str]]:
        """A new child of ``parent`` for ``task`` and its mutation record (one line per
        mutation). ``mutate`` is False for a seed path's child. The child's trainable
        components are new (a clone or a fresh head or adapter); every other component is
        shared, unchanged, with its ancestors."""


class MunetPolicy:
    """muNet (spec §4.2): seeds are the other tasks' retained paths and the root; children
    inherit, clone or mutate their parent's components."""

    def seeds(self, state: SystemState, task: str) -> list[Path]:
        return state.begin_iteration(task)

    def assemble(
        self,
        state: SystemState,
        parent: Path,
        task: str,
        num_classes: int,
        ds: Mapping[str, Any],
        mutate: bool,
        rng: np.random.Generator,
        ops: ParamOps,
        settings: Settings,
    ) -> tuple[Path, list[str]]:
        return assemble_child(state, parent, task, num_classes, ds, mutate, rng, ops, settings)


MUNET_POLICY = MunetPolicy()
