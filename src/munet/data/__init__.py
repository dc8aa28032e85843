"""Tasks (uint8 image splits), built-in offline datasets, and the muNet batch pipeline.

Names are imported on first use, so :mod:`munet.data.catalog` (plain data) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "BUILTIN_TASKS": "munet.data.builtin",
    "list_builtin_tasks": "munet.data.catalog",
    "load_builtin": "munet.data.builtin",
    "load_pretrain_corpus": "munet.data.builtin",
    "load_task": "munet.data.load",
    "register_source": "munet.data.load",
    "default_cache_dir": "munet.data.cache",
    "DS_DEFAULTS": "munet.data.pipeline",
    "TrainStream": "munet.data.pipeline",
    "augment_batch": "munet.data.pipeline",
    "eval_batches": "munet.data.pipeline",
    "prepare_eval": "munet.data.pipeline",
    "resolve_ds": "munet.data.pipeline",
    "val_subset": "munet.data.pipeline",
    "TaskData": "munet.data.task",
    "compute_fingerprint": "munet.data.task",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'munet.data' has no attribute {name!r}")
