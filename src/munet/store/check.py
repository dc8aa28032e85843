"""``munet check``: integrity (blobs, locks) and immutability (re-evaluated retained paths)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path as FsPath

from munet.errors import MunetError
from munet.store.system import SystemStore
from munet.system.component import NOT_TRAINABLE
from munet.system.state import SystemState


def check_locks(state: SystemState) -> list[str]:
    """Every live component is locked by exactly the tasks whose retained path uses it."""
    problems = []
    users: dict[int, set[str]] = {}
    for p in state.live_paths():
        for c in p.components:
            users.setdefault(c.id, set()).add(p.task)
    for c in state.posembed_cache.values():
        users.setdefault(c.id, set()).add(NOT_TRAINABLE)
    for cid, comp in state.live_components().items():
        want = users.get(cid, set())
        if comp.locks != want:
            problems.append(
                f"component {comp.name}:{cid} is locked by {sorted(comp.locks)} but "
                f"used by {sorted(want)}"
            )
    return problems


def check_system(
    directory: str | FsPath, evaluate: bool = True, log: Callable[[str], None] | None = None
) -> list[str]:
    """One line per problem; an empty list means the system is intact."""
    say = log or (lambda m: None)
    store = SystemStore(directory)
    store.read()
    state = store.load_state(load_tensors=False)
    problems = []
    comps = state.live_components()
    for cid in sorted(comps):
        record = store.blob_records.get(cid)
        if record is None:
            problems.append(f"component {comps[cid].name}:{cid} has no blob record")
            continue
        problem = store.blobs.verify(cid, record)
        if problem:
            problems.append(problem)
    say(f"blobs: {len(comps)} components checked")
    problems += check_locks(state)
    if problems or not evaluate:
        return problems
    from munet.runner import load_tasks
    from munet.train.trainer import evaluate_path

    for cid, comp in comps.items():
        comp.params = store.blobs.get(cid, store.blob_records[cid])
    meta = store.tasks()
    for task, paths in state.population.items():
        if not paths or "test_quality" not in paths[0].metrics:
            continue
        path = paths[0]
        try:
            data = load_tasks([meta[task]["spec"]])[task]
        except MunetError as err:
            problems.append(f"task {task}: cannot load its data to re-evaluate ({err})")
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
            problems.append(f"task {task}: logits on the fixed batch differ from the stored hash")
        say(f"task {task}: test accuracy {got['test_quality']:.4f} re-evaluated")
    return problems
