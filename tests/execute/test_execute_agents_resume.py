"""Resuming a system whose task agents were killed mid-iteration: real store, tiny tensors."""

from __future__ import annotations

import itertools
import time

import pytest
import torch

from munet.execute.agents import ASYNC_KEY, SkipAgentReplays, evolve_async, reserve_agent_ids
from munet.model.ops import TorchOps
from munet.store.check import check_locks
from munet.store.system import SystemStore
from munet.system.arch import RootArch
from munet.system.evolve import CandidateResult, evolve
from munet.system.hparams import BASE_DEFAULTS, search_space_for
from munet.system.state import Settings, make_root_state

ARCH = RootArch(embed_dim=8, depth=2, num_heads=1, mlp_hidden_dim=16, patch_size=16, image_size=32)
TASKS = {"a": 2, "b": 3}


class Trainer:
    """Trained tensors differ on every call, so a reused id would hit a different blob."""

    calls = itertools.count(1)

    def __init__(self, before=None):
        self.before = before or (lambda task, n: None)
        self.n = {t: 0 for t in TASKS}

    def train_generation(self, task, children, ds, seed):
        self.n[task] += 1
        self.before(task, self.n[task])
        out = []
        for c in children:
            k = float(next(self.calls))
            params = {
                x.id: {n: v + k for n, v in x.params.items()} for x in c.trainable_components()
            }
            out.append(CandidateResult(0.5 + c.id / 1000, params, [0.5], 0.0, 1))
        return out

    def test(self, path):
        return {"test_quality": 0.5}


def new_system(directory):
    hp = {"num_layers": ARCH.depth, "ds_image_size": 32, "adapter_layers": []}
    g = torch.Generator().manual_seed(0)
    params = {
        n: {k: torch.randn(s, generator=g) for k, s in ARCH.shapes(n, hp).items()}
        for n in ARCH.component_names(hp)[:-1]
    }
    s = Settings(
        space=search_space_for(ARCH.depth, ARCH.patch_size),
        defaults=dict(BASE_DEFAULTS),
        mutation_prob=0.5,
        task_iterations=1,
        candidates_per_iteration=6,
        generation_batch_size=2,
    )
    state = make_root_state(ARCH, params, s.defaults, TorchOps())
    store = SystemStore(directory)
    store.create({}, {"spec": "test"}, state, {t: {} for t in TASKS})
    return store, state, s


def test_resume_after_killed_agents_never_reuses_their_ids(tmp_path):
    store, state, s = new_system(tmp_path / "s")

    def b_after_a_merged_then_killed(task, n):
        if task != "b":
            return
        deadline = time.time() + 20
        while not any(e["type"] == "iteration_end" for e in store.events):
            assert time.time() < deadline
            time.sleep(0.01)
        if n == 3:  # b's 2nd batch was built after a's snapshot, journaled, then b was killed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evolve_async(
            state, TASKS, s, Trainer(b_after_a_merged_then_killed), store, TorchOps(), agents=2
        )
    resumed = SystemStore(tmp_path / "s")
    resumed.read()
    state = resumed.load_state()
    lost = [r for r in resumed.candidate_rows() if r.task == "b"]
    assert lost and all(r.agent for r in lost) and any(r.accepted for r in lost)
    assert all(
        r[ASYNC_KEY]
        for e in resumed.events[1:]
        for r in e.get("candidates", [])
        if r["task"] == "b"
    )
    assert max(max(r.component_ids) for r in lost) >= state.next_component_id
    reserve_agent_ids(state, resumed.candidate_rows())
    assert state.next_component_id > max(max(r.component_ids) for r in lost)
    # a sequential resume retrains b's lost iteration under fresh ids and never replays it
    evolve(state, TASKS, s, Trainer(), SkipAgentReplays(resumed), TorchOps())
    assert state.iterations_done == {"a": 1, "b": 1}
    assert check_locks(state) == []
    final = SystemStore(tmp_path / "s")
    final.read()
    live = set(final.load_state(load_tensors=False).live_components())
    # besides live blobs, only those the previous snapshot needs (GC trails it by one)
    assert final.blobs.ids() == live | final._trailing_ids()
