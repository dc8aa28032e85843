"""Asynchronous task agents on the pure core: views, merges, locks; no torch, no Ray."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from tiny import FakeTrainer, pure_state

from munet.execute.agents import (
    ASYNC_KEY,
    SkipAgentReplays,
    StopAgents,
    _AgentRecorder,
    evolve_async,
    make_view,
    next_agent_task,
)
from munet.store.check import check_locks
from munet.system.evolve import evolve, run_task_iteration
from munet.system.record import CandidateRecord
from munet.system.state import NullOps


class ListRecorder:
    def __init__(self):
        self.generations = []
        self.iterations = []

    def replay(self, *a):
        return None

    def load_result(self, *a):
        raise AssertionError

    def generation_done(self, task, iteration, batch, ds, records, children):
        self.generations.append(records)

    def iteration_done(self, state, task, iteration):
        self.iterations.append((task, iteration))


def structure(state):
    """Everything that identifies a system: paths, parents, components, locks, counters."""
    return (
        dict(state.iterations_done),
        state.next_component_id,
        state.next_path_id,
        sorted(
            (p.id, p.task, p.parent.id if p.parent else None, tuple(c.id for c in p.components))
            for p in state.all_paths()
        ),
        sorted((c.id, c.name, tuple(sorted(c.locks))) for c in state.live_components().values()),
        {t: [p.metrics for p in ps] for t, ps in state.population.items()},
    )


def settings_kw(seed):
    return dict(
        seed=seed,
        mutation_prob=0.5,
        task_iterations=2,
        candidates_per_iteration=6,
        generation_batch_size=3,
    )


TASKS = {"a": 2, "b": 3, "c": 4}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_agent_at_a_time_is_exactly_the_round_robin_loop(seed):
    seq, s = pure_state(**settings_kw(seed))
    evolve(seq, TASKS, s, FakeTrainer(), ListRecorder(), NullOps())
    agent, s = pure_state(**settings_kw(seed))
    rec = ListRecorder()
    evolve_async(agent, TASKS, s, FakeTrainer(), rec, NullOps(), agents=1)
    assert structure(agent) == structure(seq)
    assert all(r.agent and r.to_json()[ASYNC_KEY] for g in rec.generations for r in g)


def test_agents_overlap_see_older_versions_and_keep_locks_consistent():
    """Two agents at once: both first iterations start from the root only (neither has a
    retained path yet), every merge leaves locks matching the live paths."""
    barrier = threading.Barrier(2, timeout=10)
    first = set()

    def delay(task):
        if task not in first:  # hold each task's first generation batch until both started
            first.add(task)
            if len(first) <= 2:
                barrier.wait()

    state, s = pure_state(**settings_kw(5))
    seen = []
    trainer = FakeTrainer(delay=delay)
    rec = ListRecorder()

    def progress(event, **info):
        if event == "iteration_start":
            seen.append((info["task"], info["iteration"], info["seeds"]))

    evolve_async(state, {"a": 2, "b": 3}, s, trainer, rec, NullOps(), progress, agents=2)
    starts = {(t, i): seeds for t, i, seeds in seen}
    assert starts[("a", 0)] == [0] and starts[("b", 0)] == [0]  # in round-robin b sees a
    assert state.iterations_done == {"a": 2, "b": 2}
    assert check_locks(state) == []
    ids = [c.id for child in trainer.trained for c in child.trainable_components()]
    assert len(ids) == len(set(ids))  # one shared id counter
    assert len({c.id for c in trainer.trained}) == len(trainer.trained)
    assert sorted(rec.iterations) == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]


@pytest.mark.parametrize("seed", range(6))
def test_random_interleavings_never_train_a_locked_component(seed):
    rng = np.random.default_rng(seed)
    jitter = threading.Lock()

    def delay(task):
        with jitter:
            d = float(rng.uniform(0, 0.01))
        time.sleep(d)

    state, s = pure_state(**settings_kw(seed))
    trainer = FakeTrainer(delay=delay)
    evolve_async(state, TASKS, s, trainer, ListRecorder(), NullOps(), agents=3)
    assert state.iterations_done == {t: 2 for t in TASKS}
    assert check_locks(state) == []
    for child in trainer.trained:
        assert all(c.locks == set() for c in child.trainable_components())
    for p in state.live_paths()[1:]:
        assert all(p.task in c.locks for c in p.components)


def test_component_dropped_by_its_task_while_shared_in_a_view_becomes_private():
    """b starts from a's first model; meanwhile a replaces it. b keeps using a's old private
    encoder norm, which the merge then locks for b alone."""
    master, s = pure_state(
        seed=0, mutation_prob=0.0, candidates_per_iteration=3, generation_batch_size=3
    )
    guard, stop = threading.RLock(), threading.Event()
    shared = _AgentRecorder(ListRecorder(), master, guard, stop)
    newest_wins = FakeTrainer(lambda c: c.id / 1000)
    run_task_iteration(make_view(master, guard), "a", 2, s, newest_wins, shared, NullOps())
    a_old = master.retained("a")
    norm = a_old.component("encoder_norm")
    assert norm.locks == {"a"}  # a mutated child: encoder_norm is a forced private clone
    view_b = make_view(master, guard)
    run_task_iteration(make_view(master, guard), "a", 2, s, newest_wins, shared, NullOps())
    assert master.retained("a") is not a_old and norm.id not in master.live_components()
    from_a = FakeTrainer(lambda c: 0.9 if c.parent.task == "a" else 0.1)
    run_task_iteration(view_b, "b", 3, s, from_a, shared, NullOps())
    b = master.retained("b")
    assert b.parent is master.root  # a's old model is gone; nearest live ancestor
    assert b.component("encoder_norm").id == norm.id
    assert b.component("encoder_norm").locks == {"b"}
    assert check_locks(master) == []


def test_writes_after_stop_are_refused():
    master, _ = pure_state()
    guard, stop = threading.RLock(), threading.Event()
    shared = _AgentRecorder(ListRecorder(), master, guard, stop)
    stop.set()
    with pytest.raises(StopAgents):
        shared.generation_done("a", 0, 0, {}, [], [])


def record(task, path_id, agent=False):
    return CandidateRecord(task, 0, 0, 0, path_id, 0, "root", True, [], {}, [], [], agent=agent)


def test_agent_records_are_not_replayed_sequentially():
    class Stored(ListRecorder):
        def replay(self, task, iteration, batch):
            return [record(task, 1, agent=True)] if task == "a" else [record(task, 2)]

    guard = SkipAgentReplays(Stored())
    assert guard.replay("a", 0, 0) is None
    assert guard.replay("b", 0, 0) == [record("b", 2)]
    guard.iteration_done(None, "b", 0)
    assert guard.inner.iterations == [("b", 0)]


def test_next_agent_task_skips_running_tasks():
    state, _ = pure_state()
    state.iterations_done = {"a": 1}
    assert next_agent_task(state, ["a", "b", "c"], 2, running=["b"]) == "c"
    assert next_agent_task(state, ["a", "b", "c"], 2, running=["b", "c"]) == "a"
    assert next_agent_task(state, ["a"], 1, running=[]) is None


def test_an_agent_error_stops_the_run():
    def boom(task):
        if task == "b":
            raise RuntimeError("worker lost")

    state, s = pure_state(**settings_kw(0))
    with pytest.raises(RuntimeError, match="worker lost"):
        evolve_async(state, TASKS, s, FakeTrainer(delay=boom), ListRecorder(), NullOps(), agents=2)
