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
    """How a task iteration picks its seed paths and builds a child from a parent: muNet's
    (:data:`MUNET_POLICY`) or a baseline's (``munet.system.baselines.BaselinePolicy``)."""

    def seeds(self, state: SystemState, task: str) -> list[Path]:
        """Called once at the start of each task iteration; must unlock the task's retained
        components (:meth:`SystemState.begin_iteration`) and return the seed paths."""

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
        """A new child of ``parent`` and its mutation record; must not change ``parent`` or
        any existing component (new ids come from ``state``)."""


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
