"""The pure muNet core: concrete numbers from the spec, no training, no tensors."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import TI3, FakeTrainer, NullRecorder, pure_state

from munet.system.arch import RootArch, numel
from munet.system.assemble import assemble_child
from munet.system.component import NOT_TRAINABLE
from munet.system.evolve import evolve, next_task
from munet.system.hparams import (
    image_sizes_for,
    incremental_step,
    mutate_adapters,
)
from munet.system.path import Path
from munet.system.score import accounted_params, score
from munet.system.select import select_parent
from munet.system.state import NullOps

B16 = RootArch(
    embed_dim=768, depth=12, num_heads=12, mlp_hidden_dim=3072, patch_size=16, image_size=224
)


def test_reference_params_match_the_spec():
    assert TI3.reference_params() == 1_484_162
    assert B16.reference_params() == 85_652_738
    hp = {"adapter_dim": 32}
    assert numel(TI3.shapes("encoderblock_0", hp)) == 444_864
    assert numel(B16.shapes("encoderblock_0", hp)) == 7_087_872
    for d in (8, 32, 128):
        assert numel(B16.shapes("residual_adapter_0", {"adapter_dim": d})) == 2304 + 1537 * d
    assert numel(B16.shapes("residual_adapter_3", {"adapter_dim": 32})) == 51_488


def test_image_sizes_follow_the_patch():
    assert image_sizes_for(16)[:3] == [16, 32, 48] and image_sizes_for(16)[-1] == 384
    assert len(image_sizes_for(16)) == 24
    assert image_sizes_for(32) == list(range(32, 385, 32))


def test_incremental_step_moves_one_index_and_clips():
    values = [1, 2, 3]
    rng = np.random.default_rng(0)
    moves = [incremental_step(values, 2, rng) for _ in range(2000)]
    assert set(moves) == {1, 3}
    assert abs(moves.count(1) / 2000 - 0.5) < 0.05
    at_end = [incremental_step(values, 3, rng) for _ in range(2000)]
    assert set(at_end) == {2, 3}
    assert abs(at_end.count(3) / 2000 - 0.5) < 0.05


def test_adapters_are_dropped_with_their_block_and_inserted_below_num_layers():
    rng = np.random.default_rng(0)
    hp, rec = mutate_adapters({"num_layers": 2, "adapter_layers": [0, 2]}, 0.0, rng)
    assert hp["adapter_layers"] == [0] and rec == ["adapter removed with block 2"]
    hp, _ = mutate_adapters({"num_layers": 3, "adapter_layers": []}, 1.0, rng)
    assert hp["adapter_layers"] == [0, 1, 2]


def test_root_is_frozen_and_has_no_head():
    state, _ = pure_state()
    names = [c.name for c in state.root.components]
    assert names == [
        "embedding",
        "cls",
        "posembed_input",
        "encoderblock_0",
        "encoderblock_1",
        "encoderblock_2",
        "encoder_norm",
    ]
    assert all(c.locks == {NOT_TRAINABLE} for c in state.root.components)


def test_seed_phase_child_shares_everything_but_a_new_head():
    state, s = pure_state()
    child, rec = assemble_child(
        state, state.root, "a", 10, {}, False, np.random.default_rng(0), NullOps(), s
    )
    root_ids = {c.id for c in state.root.components}
    assert [c.name for c in child.trainable_components()] == ["head"]
    assert {c.id for c in child.components if c.name != "head"} == root_ids
    assert child.component("head").shapes == {"weight": (10, 192), "bias": (10,)}
    assert rec == []
    # params: frozen root layers unshared by other tasks count in full
    assert accounted_params(child) == TI3.reference_params() - 2 * 192 - 2 + 10 * 192 + 10


def test_mutated_child_always_clones_encoder_norm_and_walks_for_posembed():
    state, s = pure_state(mutation_prob=0.0)
    child, rec = assemble_child(
        state,
        state.root,
        "a",
        10,
        {"ds_image_size": 48},
        True,
        np.random.default_rng(0),
        NullOps(),
        s,
    )
    norm = child.component("encoder_norm")
    assert norm.trainable and norm.origin == f"clone:{state.root.component('encoder_norm').id}"
    assert "clone encoder_norm (forced)" in rec
    pos = child.component("posembed_input")
    assert pos.shapes["pos_embed"] == (1, 1 + 9, 192)
    assert pos is state.posembed_cache[48] and pos.locks == {NOT_TRAINABLE}
    # second child at the same size reuses the cached resize
    child2, _ = assemble_child(
        state,
        state.root,
        "a",
        10,
        {"ds_image_size": 48},
        True,
        np.random.default_rng(1),
        NullOps(),
        s,
    )
    assert child2.component("posembed_input") is pos


def test_heads_are_never_inherited_across_tasks_but_copied_within_a_task():
    state, s = pure_state(mutation_prob=0.0)
    a, _ = assemble_child(
        state, state.root, "a", 10, {}, False, np.random.default_rng(0), NullOps(), s
    )
    a.metrics["quality"] = 0.5
    state.accept(a)
    state.end_iteration("a", s)
    b, _ = assemble_child(state, a, "b", 10, {}, False, np.random.default_rng(0), NullOps(), s)
    assert b.component("head") is not a.component("head")
    assert b.component("head").origin == "new"
    # same task, next iteration: head unlocked, so the child copies it
    state.begin_iteration("a")
    a2, _ = assemble_child(state, a, "a", 10, {}, True, np.random.default_rng(0), NullOps(), s)
    assert a2.component("head").origin == f"clone:{a.component('head').id}"
    assert (a.offspring, a2.generation) == (0, a.generation + 1)  # the loop counts offspring


def test_accounting_splits_shared_components_between_tasks():
    state, s = pure_state(mutation_prob=0.0)
    a, _ = assemble_child(
        state, state.root, "a", 2, {}, False, np.random.default_rng(0), NullOps(), s
    )
    a.metrics["quality"] = 1.0
    state.accept(a)
    state.end_iteration("a", s)
    full = accounted_params(a)
    assert full == TI3.reference_params()  # 2-class head, all root layers used by "a" only
    b, _ = assemble_child(state, a, "b", 2, {}, False, np.random.default_rng(0), NullOps(), s)
    shared = sum(c.size for c in b.components if c.name != "head")
    assert accounted_params(b) == shared / 2 + b.component("head").size
    b.metrics["quality"] = 1.0
    state.accept(b)
    state.end_iteration("b", s)
    # dynamic: a's score now reflects the sharing
    assert accounted_params(a) == shared / 2 + a.component("head").size
    s09 = score(0.8, accounted_params(a), state.p_ref, 0.9)
    assert math.isclose(s09, 0.8 * 0.9 ** (accounted_params(a) / 1_484_162))


def test_ppdecay_walk_and_fallback():
    def p(i, n):
        return Path(i, "t", None, {}, [], offspring=n)

    class Fixed:
        def __init__(self, draws, ints=0):
            self.draws, self.ints, self.int_calls = list(draws), ints, 0

        def random(self):
            return self.draws.pop(0)

        def integers(self, n):
            self.int_calls += 1
            return self.ints

    a, b, c = p(1, 2), p(2, 0), p(3, 0)
    # a accepted with 0.25: draw 0.3 rejects, b has n=0 and is always accepted
    assert select_parent([a, b, c], [], Fixed([0.3, 0.999])) is b
    assert select_parent([a, b], [], Fixed([0.2])) is a
    seed = p(9, 0)
    assert select_parent([a], [seed], Fixed([0.9], ints=0)) is seed
    assert select_parent([], [seed], Fixed([], ints=0)) is seed
    # parent_fallback=best: a walk that accepts nothing ends at the task's best path, after the
    # same draws (the uniform pick is drawn and dropped); without task paths it is uniform
    a.offspring = 3
    draws = Fixed([0.9], ints=0)
    assert select_parent([a], [seed], draws, "best") is a
    assert draws.draws == [] and draws.int_calls == 1
    assert select_parent([], [seed], Fixed([], ints=0), "best") is seed


def test_end_iteration_keeps_best_locks_it_and_relinks():
    state, s = pure_state()
    rng = np.random.default_rng(0)
    a, _ = assemble_child(state, state.root, "a", 3, {}, False, rng, NullOps(), s)
    a.metrics["quality"] = 0.5
    state.accept(a)
    a2, _ = assemble_child(state, a, "a", 3, {}, True, rng, NullOps(), s)
    a2.metrics["quality"] = 0.7
    state.accept(a2)
    a3, _ = assemble_child(state, a2, "a", 3, {}, True, rng, NullOps(), s)
    a3.metrics["quality"] = 0.9
    state.accept(a3)
    best = state.end_iteration("a", s)
    assert best is a3 and state.population["a"] == [a3]
    assert a3.parent is state.root  # a2 and a were discarded
    assert all("a" in c.locks for c in a3.components)
    assert state.iterations_done == {"a": 1}
    state.begin_iteration("a")
    assert {c.id for c in a3.trainable_components()} == {
        c.id for c in a3.components if c.locks == set()
    }
    assert a3.component("head").trainable and not a3.component("encoderblock_0").trainable


def test_round_robin_schedule_grows_with_budget_and_new_tasks():
    state, _ = pure_state()
    assert next_task(state, ["a", "b"], 2) == "a"
    state.iterations_done = {"a": 1}
    assert next_task(state, ["a", "b"], 2) == "b"
    state.iterations_done = {"a": 2, "b": 2}
    assert next_task(state, ["a", "b"], 2) is None
    assert next_task(state, ["a", "b", "c"], 2) == "c"
    assert next_task(state, ["a", "b"], 3) == "a"


def run_fake(seed, n_tasks=3, iters=2, cands=8, batch=4, prob=0.1):
    state, s = pure_state(
        seed=seed,
        mutation_prob=prob,
        task_iterations=iters,
        candidates_per_iteration=cands,
        generation_batch_size=batch,
    )
    trainer = FakeTrainer()
    tasks = {f"t{i}": 2 + i for i in range(n_tasks)}
    evolve(state, tasks, s, trainer, NullRecorder(), NullOps())
    return state, trainer, s


def test_fake_evolution_structure():
    state, trainer, s = run_fake(0)
    assert len(trainer.trained) == 3 * 2 * 8
    assert state.iterations_done == {"t0": 2, "t1": 2, "t2": 2}
    assert [len(v) for v in state.population.values()] == [1, 1, 1]
    # seed phase of t2's first iteration: children of root, t0 and t1 (newest id first)
    t2_first = [c for c in trainer.trained if c.task == "t2"][:3]
    assert [c.parent.task for c in t2_first][-1] == NOT_TRAINABLE
    for path in state.live_paths()[1:]:
        assert all(path.task in c.locks for c in path.components)
        assert path.component("head").locks == {path.task}
        assert "test_quality" in path.metrics


def test_evolution_is_deterministic_per_seed():
    a, ta, _ = run_fake(3)
    b, tb, _ = run_fake(3)
    assert [c.id for c in ta.trained] == [c.id for c in tb.trained]
    assert [c.hparams for c in ta.trained] == [c.hparams for c in tb.trained]
    c, tc, _ = run_fake(4)
    assert [x.hparams for x in tc.trained] != [x.hparams for x in ta.trained]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), prob=st.sampled_from([0.1, 0.5, 1.0]))
def test_no_locked_component_is_ever_trainable_in_a_candidate(seed, prob):
    state, trainer, s = run_fake(seed, n_tasks=2, iters=2, cands=6, batch=3, prob=prob)
    for child in trainer.trained:
        for comp in child.trainable_components():
            assert comp.locks == set()
    # each retained path's private components are not used by any other retained path
    live = state.live_paths()
    for p in live[1:]:
        for q in live[1:]:
            if p is q:
                continue
            shared = {c.id for c in p.components} & {c.id for c in q.components}
            for cid in shared:
                comp = next(c for c in p.components if c.id == cid)
                assert {p.task, q.task} <= comp.locks


def test_stage_flops_count_the_matmuls_of_each_stage():
    hp = {"ds_image_size": 32, "adapter_dim": 32, "num_classes": 10}
    # 32 px, patch 16: 4 patches + the class token
    assert TI3.stage_flops("embedding", hp) == 2 * 4 * 3 * 16 * 16 * 192
    dense = 5 * (3 * 192 * 192 + 192 * 192 + 2 * 192 * 768)
    assert TI3.stage_flops("encoderblock_0", hp) == 2 * (dense + 2 * 5 * 5 * 192)
    assert TI3.stage_flops("residual_adapter_1", hp) == 2 * 5 * 2 * 192 * 32
    assert TI3.stage_flops("head", hp) == 2 * 192 * 10
    assert TI3.stage_flops("encoder_norm", hp) == 0
    # a B/16 block at 224 px: ~17.4 GFLOPs... per 12 blocks ~ the usual 35 GFLOPs of ViT-B/16
    b16 = sum(B16.stage_flops(f"encoderblock_{i}", {"ds_image_size": 224}) for i in range(12))
    assert 33e9 < b16 < 36e9
