"""Asynchronous task agents (as in mu3Net): several tasks evolve at once, one agent per task.

Each agent runs one task iteration of the ordinary loop (:func:`run_task_iteration`) on a
*view*: a copy of the system's retained paths and their components (same ids, same tensors,
own lock sets and metrics), taken when the iteration starts. Other tasks' retained models are
locked in the view, so the agent can only share or clone them, never change them; its new
components get ids from the one shared counter. When the iteration ends, its retained path is
merged back into the driver's state under a lock and the state is snapshotted to the store,
which stays single-writer (every recorder call is serialised).

What changes compared with sequential round-robin:

- a task's seeds are the other tasks' retained paths *as of the start of its iteration*: a task
  started while another is still evolving sees that task's previous best (or, on the first
  round, only the root), so transfer lags by up to one iteration;
- which versions are seen depends on timing, so runs are not reproducible bit for bit (with one
  agent at a time they are, and equal the sequential loop's);
- a kill loses the task iterations in flight, not only the current generation batch: on resume
  they restart from the last merged state (their journal records are kept but never replayed).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from munet.system.component import NOT_TRAINABLE, Component
from munet.system.evolve import Progress, Recorder, Trainer, next_task, run_task_iteration
from munet.system.graph import copy_component, copy_graph
from munet.system.path import Path
from munet.system.policy import MUNET_POLICY, CandidatePolicy
from munet.system.record import ASYNC_KEY, CandidateRecord
from munet.system.state import ParamOps, Settings, SystemState

__all__ = ["ASYNC_KEY"]  # the journal key of agent records (CandidateRecord.agent)


class MasterIds:
    """Ids and resized position embeddings of a task agent's view come from the driver's state
    (under the guard), so that they stay unique (and identical to a sequential run's)."""

    def __init__(self, master: SystemState, guard: threading.RLock) -> None:
        self.master, self.guard = master, guard

    def component_id(self) -> int:
        with self.guard:
            self.master.next_component_id += 1
            return self.master.next_component_id - 1

    def path_id(self) -> int:
        with self.guard:
            self.master.next_path_id += 1
            return self.master.next_path_id - 1

    def posembed_for(self, image_size: int, ops: ParamOps) -> Component:
        with self.guard:
            return self.master.posembed_for(image_size, ops)


def make_view(master: SystemState, guard: threading.RLock) -> SystemState:
    """A task agent's copy of the live paths and components (tensors are shared: they are
    never changed); new ids come from ``master``."""
    with guard:
        comps, paths = copy_graph(
            master.live_components().values(), master.all_paths(), master.root
        )
        return SystemState(
            arch=master.arch,
            root=paths[master.root.id],
            p_ref=master.p_ref,
            population={t: [paths[p.id] for p in ps] for t, ps in master.population.items()},
            posembed_cache={k: comps[c.id] for k, c in master.posembed_cache.items()},
            iterations_done=dict(master.iterations_done),
            next_component_id=master.next_component_id,
            next_path_id=master.next_path_id,
            shared=MasterIds(master, guard),
        )


def merge(master: SystemState, view: SystemState, task: str) -> Path:
    """Make the view's retained path of ``task`` the master's (call with the guard held).

    Lock rules as in ``SystemState.end_iteration``: the task's lock leaves its old retained
    components and goes on its new ones. A component the view still had but the master has
    dropped meanwhile (another task replaced the model that used it) is private to ``task``.
    """
    best = view.population[task][0]
    live = master.live_components()
    old = master.retained(task)
    if old is not None:
        for c in old.components:
            c.locks.discard(task)
    comps = []
    for c in best.components:
        m = live.get(c.id)
        if m is None:
            m = copy_component(c)
            m.locks = {task} | (c.locks & {NOT_TRAINABLE})
        m.locks.add(task)
        comps.append(m)
    if old is not None and old.id == best.id:
        old.metrics, old.offspring = best.metrics, best.offspring
        kept = old
    else:
        live_ids = {p.id: p for p in master.live_paths() if p is not old}
        q = best.parent
        while q is not None and q.id not in live_ids:
            q = q.parent
        parent = live_ids[q.id] if q is not None else master.root
        kept = Path(
            best.id,
            task,
            parent,
            best.hparams,
            comps,
            best.metrics,
            best.generation,
            best.offspring,
        )
    master.population[task] = [kept]
    master.iterations_done[task] = view.iterations_done[task]
    master.relink()
    return kept


class StopAgents(Exception):
    """Raised in an agent thread that tries to write after the driver stopped."""


class _AgentRecorder:
    """The store as one agent sees it: no replay, serialised writes, merge at iteration end."""

    def __init__(self, inner: Recorder, master: SystemState, guard: threading.RLock, stop: Any):
        self.inner, self.master, self.guard, self.stop = inner, master, guard, stop

    def replay(self, task: str, iteration: int, batch: int) -> None:
        return None

    def load_result(self, record: CandidateRecord, child: Path) -> Any:
        raise AssertionError("agents never replay")

    def generation_done(
        self,
        task: str,
        iteration: int,
        batch: int,
        ds: Mapping[str, Any],
        records: list[CandidateRecord],
        children: Sequence[Path],
    ) -> None:
        records = [replace(r, agent=True) for r in records]
        with self.guard:
            self._check()
            self.inner.generation_done(task, iteration, batch, ds, records, children)

    def iteration_done(self, state: SystemState, task: str, iteration: int) -> None:
        with self.guard:
            self._check()
            merge(self.master, state, task)
            self.inner.iteration_done(self.master, task, iteration)

    def _check(self) -> None:
        if self.stop.is_set():
            raise StopAgents()


class SkipAgentReplays:
    """A recorder that never replays agent-written generation batches (sequential resume of a
    system that was evolved by agents); everything else goes to ``inner``."""

    def __init__(self, inner: Recorder) -> None:
        self.inner = inner

    def replay(self, task: str, iteration: int, batch: int) -> list[CandidateRecord] | None:
        records = self.inner.replay(task, iteration, batch)
        if records and any(r.agent for r in records):
            return None
        return records

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def reserve_agent_ids(state: SystemState, records: Sequence[CandidateRecord]) -> None:
    """Move the id counters past every id an agent journaled (call on resume).

    Agent iterations lost in a kill took ids beyond the last snapshot's counters, and their
    accepted components' blobs may be on disk; those batches are never replayed, so without
    this a resumed run could reuse an id for different tensors.
    """
    agent = [r for r in records if r.agent]
    if agent:
        top_path = max(r.path_id for r in agent)
        top_comp = max(max(r.component_ids, default=-1) for r in agent)
        state.next_path_id = max(state.next_path_id, top_path + 1)
        state.next_component_id = max(state.next_component_id, top_comp + 1)


def next_agent_task(
    state: SystemState, tasks: Sequence[str], budget: int, running: Sequence[str]
) -> str | None:
    """Round-robin among the tasks not being evolved: fewest iterations first, list order."""
    return next_task(state, [t for t in tasks if t not in running], budget)


def evolve_async(
    state: SystemState,
    tasks: Mapping[str, int],
    settings: Settings,
    trainer: Trainer,
    recorder: Recorder,
    ops: ParamOps,
    progress: Progress | None = None,
    agents: int = 2,
    policy: CandidatePolicy = MUNET_POLICY,
) -> None:
    """Like :func:`munet.system.evolve.evolve`, with up to ``agents`` tasks evolving at once.

    ``trainer`` must accept concurrent calls. Returns when every task has had
    ``settings.task_iterations`` iterations; the first agent error stops the others and is
    raised here.
    """
    guard = threading.RLock()
    stop = threading.Event()
    done: queue.Queue[tuple[str, BaseException | None]] = queue.Queue()
    running: dict[str, threading.Thread] = {}
    shared = _AgentRecorder(recorder, state, guard, stop)
    say = progress or (lambda *a, **k: None)

    def locked_say(*args: Any, **kwargs: Any) -> None:
        with guard:
            say(*args, **kwargs)

    def agent(task: str, view: SystemState) -> None:
        err: BaseException | None = None
        try:
            run_task_iteration(
                view, task, tasks[task], settings, trainer, shared, ops, locked_say, policy
            )
        except BaseException as e:  # reported to the driver thread
            err = e
        done.put((task, err))

    try:
        while True:
            with guard:
                while len(running) < agents:
                    task = next_agent_task(state, list(tasks), settings.task_iterations, running)
                    if task is None:
                        break
                    view = make_view(state, guard)  # what the agent sees of other tasks
                    thread = threading.Thread(
                        target=agent, args=(task, view), name=f"agent-{task}", daemon=True
                    )
                    running[task] = thread
                    thread.start()
            if not running:
                return
            while True:
                try:
                    task, err = done.get(timeout=0.5)
                    break
                except queue.Empty:
                    continue
            running.pop(task).join()
            if err is not None:
                raise err
    finally:
        with guard:
            stop.set()
