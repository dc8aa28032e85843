"""``munet check``'s immutability check: retained paths still score what was recorded."""

from __future__ import annotations

import logging
from collections.abc import Callable

from munet.errors import MunetError
from munet.progress import Progress
from munet.store.system import SystemStore
from munet.system.state import SystemState

logger = logging.getLogger(__name__)


def reevaluate_retained(
    store: SystemStore, state: SystemState, log: Callable[[str], None] | None = None
) -> list[str]:
    """Re-evaluate every tested retained path on its task's test split; one line per path whose
    accuracy (or logits hash on the fixed batch) differs from the stored one. Loads the live
    components' tensors into ``state``. Progress goes to ``log``, else to this module's logger.
    """
    from munet.data.load import load_tasks
    from munet.train.trainer import evaluate_path

    problems = []
    for cid, comp in state.live_components().items():
        comp.params = store.blobs.get(cid, store.blob_records[cid])
    meta = store.tasks()
    tested = [
        paths[0]
        for paths in state.population.values()
        if paths and "test_quality" in paths[0].metrics
    ]
    with Progress(len(tested), "check re-evaluate", unit="task", log=log, logger=logger) as count:
        for path in tested:
            task = path.task
            try:
                data = load_tasks([meta[task]["spec"]])[task]
            except MunetError as err:
                problems.append(f"task {task}: cannot load its data to re-evaluate ({err})")
                count.advance()
                continue
            got = evaluate_path(state.arch, path, data)
            want_acc = path.metrics["test_quality"]
            if got["test_quality"] != want_acc:
                problems.append(
                    f"task {task}: test accuracy {got['test_quality']:.6f} differs from "
                    f"the stored {want_acc:.6f}"
                )
            want_hash = path.metrics.get("test_logits_sha256")
            if want_hash and got["test_logits_sha256"] != want_hash:
                problems.append(
                    f"task {task}: logits on the fixed batch differ from the stored hash"
                )
            count.advance(line=f"task {task}: test accuracy {got['test_quality']:.4f} re-evaluated")
    return problems
