"""Parent selection (spec §4.2): which path a mutated child of a task iteration starts from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from munet.system.path import Path


def select_parent(ranked: Sequence[Path], seeds: Sequence[Path], rng: np.random.Generator) -> Path:
    """PPDecay: walk the ranked task paths, accept each with 0.5^offspring (spec §4.2).

    Falls back to a uniform pick among the seeds and the task's paths.
    """
    for p in ranked:
        if rng.random() < 0.5**p.offspring:
            return p
    pool = list(seeds) + list(ranked)
    return pool[int(rng.integers(len(pool)))]
