"""Parent selection (spec §4.2): which path a mutated child of a task iteration starts from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from munet.system.path import Path

#: Where a walk that accepts nothing ends: ``uniform`` among the seeds and the task's paths (the
#: spec), or the task's ``best`` path (beyond the paper: a small budget keeps its lineage)
FALLBACKS = ("uniform", "best")


def select_parent(
    ranked: Sequence[Path],
    seeds: Sequence[Path],
    rng: np.random.Generator,
    fallback: str = "uniform",
) -> Path:
    """PPDecay: walk the ranked task paths, accept each with 0.5^offspring (spec §4.2).

    Falls back to a uniform pick among the seeds and the task's paths (the spec), or with
    ``fallback="best"`` to the best-ranked task path when there is one. Both draw the same
    random numbers, so the two differ only in the parent of a walk that accepts nothing.
    """
    for p in ranked:
        if rng.random() < 0.5**p.offspring:
            return p
    pool = list(seeds) + list(ranked)
    pick = pool[int(rng.integers(len(pool)))]  # drawn either way: later draws stay the same
    return ranked[0] if fallback == "best" and ranked else pick
