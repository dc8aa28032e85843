"""The tiny evolve configuration the end-to-end tests share."""

from __future__ import annotations

from pathlib import Path

TINY = [
    "--root",
    "builtin:vit_micro",
    "task_iterations=2",
    "candidates_per_iteration=3",
    "generation_batch_size=3",
    "batch_size=32",
    "validations_per_candidate=2",
    "validation_interval_cap=15",
    "threads=1",
]


def tiny_args(system: Path, tasks: str, *extra: str) -> list[str]:
    return ["evolve", "--system", str(system), "--tasks", tasks, *TINY, *extra]
