"""Parameter accounting and the scale-controlled score (spec §6)."""

from __future__ import annotations

from munet.system.path import Path


def accounted_params(path: Path) -> float:
    """Σ size ÷ k over the path's components, k = tasks locking it plus the path's own task.

    Dynamic: changes as other tasks lock or release the components.
    """
    total = 0.0
    for c in path.components:
        k = len(c.user_tasks() | {path.task})
        total += c.size / k
    return total


def private_params(path: Path) -> int:
    """Parameters of components no other real task (nor the root) uses."""
    return sum(c.size for c in path.components if not (c.locks - {path.task}))


def score(quality: float, params: float, p_ref: int, scale_factor: float) -> float:
    """score = quality × s^(P_path / P_ref)."""
    return float(quality) * float(scale_factor) ** (params / p_ref)


def path_score(path: Path, p_ref: int, scale_factor: float) -> float:
    """Current score of a trained path (its best validation quality, dynamic accounting)."""
    return score(path.metrics["quality"], accounted_params(path), p_ref, scale_factor)
