"""The tiny evolve configuration the end-to-end tests share.

Two environment variables vary it, to prove that no test depends on one set of floats:
``MUNET_TEST_SEED`` (the system seed, default 0) and ``MUNET_TEST_THREADS`` (torch CPU threads,
default 1). ``pytest --random-order`` shuffles the tests.
"""

from __future__ import annotations

import os
from pathlib import Path

SEED = int(os.environ.get("MUNET_TEST_SEED", "0"))
THREADS = int(os.environ.get("MUNET_TEST_THREADS", "1"))

TINY = [
    "--root",
    "builtin:vit_micro",
    "task_iterations=2",
    "candidates_per_iteration=3",
    "generation_batch_size=3",
    "batch_size=32",
    "validations_per_candidate=2",
    "validation_interval_cap=15",
    f"threads={THREADS}",
    f"seed={SEED}",
]


def tiny_args(system: Path, tasks: str, *extra: str) -> list[str]:
    return ["evolve", "--system", str(system), "--tasks", tasks, *TINY, *extra]
