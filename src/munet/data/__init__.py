"""Tasks (uint8 image splits), built-in offline datasets, and the muNet batch pipeline."""

from munet.data.builtin import (
    BUILTIN_TASKS,
    list_builtin_tasks,
    load_builtin,
    load_pretrain_corpus,
    load_task,
    register_source,
)
from munet.data.cache import default_cache_dir
from munet.data.pipeline import (
    DS_DEFAULTS,
    TrainStream,
    augment_batch,
    eval_batches,
    prepare_eval,
    resolve_ds,
    val_subset,
)
from munet.data.task import TaskData, compute_fingerprint

__all__ = [
    "BUILTIN_TASKS",
    "DS_DEFAULTS",
    "TaskData",
    "TrainStream",
    "augment_batch",
    "compute_fingerprint",
    "default_cache_dir",
    "eval_batches",
    "list_builtin_tasks",
    "load_builtin",
    "load_pretrain_corpus",
    "load_task",
    "prepare_eval",
    "register_source",
    "resolve_ds",
    "val_subset",
]
