"""``munet check``: integrity (blobs, locks) and immutability (re-evaluated retained paths)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path as FsPath

from munet.progress import Progress
from munet.store.system import SystemStore
from munet.system.component import NOT_TRAINABLE
from munet.system.state import SystemState

Log = Callable[[str], None]

logger = logging.getLogger(__name__)


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


def check_manifest(store: SystemStore) -> list[str]:
    """The journal holds at least the events manifest.json counted when it was last written
    (fewer means acknowledged events, perhaps a snapshot whose garbage was collected, are gone)."""
    path = store.dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []  # a run killed while creating the system writes it on its next snapshot
    except (OSError, ValueError) as err:
        return [f"{path} cannot be read ({err.__class__.__name__}); restore it from backup"]
    counted = manifest.get("events") if isinstance(manifest, dict) else None
    if isinstance(counted, int) and counted > len(store.events):
        return [
            f"{store.journal.path} holds {len(store.events)} events but {path.name} counted "
            f"{counted}: acknowledged events were lost (a truncated journal); restore the "
            "system directory from backup"
        ]
    return []


def _users(state: SystemState) -> dict[int, list[str]]:
    """Component id -> the tasks whose retained path uses it."""
    users: dict[int, list[str]] = {}
    for task, paths in state.population.items():
        for c in paths[0].components if paths else []:
            users.setdefault(c.id, []).append(task)
    return users


def check_blobs(store: SystemStore, state: SystemState, log: Log | None = None) -> list[str]:
    """Every blob the live state or a replayed generation batch needs is present and intact;
    a damaged one names the tasks (or the generation batch) that need it."""
    problems = []
    comps = state.live_components()
    users = _users(state)
    replay = store.replay_blobs()
    with Progress(len(comps) + len(replay), "check blobs", unit="blob", log=log) as count:
        for cid in sorted(comps):
            count.advance()
            record = store.blob_records.get(cid)
            if record is None:
                problems.append(f"component {comps[cid].name}:{cid} has no blob record")
                continue
            problem = store.blobs.verify(cid, record)
            if problem:
                tasks = ", ".join(users.get(cid, [])) or "none retained; needed to resume"
                problems.append(f"{problem} (used by tasks: {tasks})")
        for (task, iteration, batch), cid, record in replay:
            count.advance()
            problem = store.blobs.verify(cid, record)
            if problem:
                problems.append(
                    f"{problem} (needed to resume: generation batch {batch} of task {task} "
                    f"iteration {iteration})"
                )
    return problems


#: The immutability check ``munet check`` runs on an intact system (it needs the training
#: layer, so the caller passes it: :func:`munet.train.recheck.reevaluate_retained`).
Reevaluate = Callable[[SystemStore, SystemState, Log | None], list[str]]


def check_system(
    directory: str | FsPath,
    log: Log | None = None,
    reevaluate: Reevaluate | None = None,
) -> list[str]:
    """One line per problem; an empty list means the system is intact and can resume.

    Integrity (manifest, blobs, train locks) always; then, if it is intact, ``reevaluate``.
    Progress goes to ``log`` when given, else to this module's logger.
    """
    say = log or logger.info
    store = SystemStore(directory)
    store.read()
    state = store.load_state(load_tensors=False)
    problems = check_manifest(store)
    problems += check_blobs(store, state, log)
    comps = state.live_components()
    say(f"blobs: {len(comps)} components and {len(store.replay_blobs())} to replay checked")
    problems += check_locks(state)
    logger.debug("manifest, blobs and train locks: %d problem(s)", len(problems))
    if problems or reevaluate is None:
        return problems
    return reevaluate(store, state, log)
