"""``max_private_params`` (beyond the paper): a mutated child over the task's cap on private
parameters is drawn again, then gives way to its parent's unmutated child; with ``start`` the
cap is the task's start from the root (under ``search: extended`` a LoRA run's size)."""

from __future__ import annotations

import numpy as np
import pytest
from tiny import FakeTrainer, NullRecorder

from munet.system.arch import RootArch, numel
from munet.system.assemble import CAP_DRAWS, assemble_child, private_cap
from munet.system.evolve import evolve
from munet.system.hparams import default_hparams, search_space_for
from munet.system.score import private_params
from munet.system.state import NullOps, Settings, make_root_state

TI3 = RootArch(
    embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
)
OPS = NullOps()
CLASSES = 10
LORA_R8 = 3 * 3072 * 8  # rank 8 on qkv, proj, fc1, fc2 of three blocks (r(8d + 2h) each)
HEAD, NORM = 192 * CLASSES + CLASSES, 2 * 192


def new_state(cap, prob=0.5, seed=0):
    s = Settings(
        space=search_space_for(3, 16, search="extended"),
        defaults=default_hparams("safe", "extended", "lowrank", depth=3),
        mutation_prob=prob,
        mutate_lowranks=True,
        max_private_params=cap,
        seed=seed,
    )
    params = {n: None for n in TI3.component_names({"num_layers": 3})}
    return make_root_state(TI3, params, s.defaults, OPS), s


def start_path(state, s):
    """The task's path from the root, accepted (its components locked by the task)."""
    p, _ = assemble_child(state, state.root, "a", CLASSES, {}, False, None, OPS, s)
    p.metrics["quality"] = 0.5
    state.accept(p)
    return p


def children(state, s, parent, n=40):
    out = []
    for k in range(n):
        rng = np.random.default_rng(k)
        out.append(assemble_child(state, parent, "a", CLASSES, {}, True, rng, OPS, s))
    return out


def test_start_cap_is_the_private_size_of_a_lora_run():
    state, s = new_state("start")
    # rank-8 deltas on every block, the final norm (always cloned in a mutated child), the head
    assert private_cap(state, "a", CLASSES, {}, s) == LORA_R8 + NORM + HEAD
    p = start_path(state, s)
    assert private_params(p) == LORA_R8 + HEAD  # the unmutated start shares the root's norm
    # a mutated child with no random change (probability 0) is exactly at the cap
    flat, fs = new_state("start", prob=0.0)
    (child, rec), *_ = children(flat, fs, start_path(flat, fs), n=1)
    assert rec == ["clone encoder_norm (forced)"]
    assert private_params(child) == private_cap(flat, "a", CLASSES, {}, fs)
    # a number is taken as it is; 0 / None is no cap (the spec)
    assert private_cap(state, "a", CLASSES, {}, new_state(12345)[1]) == 12345
    assert private_cap(state, "a", CLASSES, {}, new_state(None)[1]) is None


def test_children_over_the_cap_are_drawn_again():
    free_state, free = new_state(None)
    capped_state, capped = new_state("start")
    free_kids = children(free_state, free, start_path(free_state, free))
    capped_kids = children(capped_state, capped, start_path(capped_state, capped))
    cap = private_cap(capped_state, "a", CLASSES, {}, capped)
    # without the cap half the children grow (adapters, clones, a higher rank); with it none
    assert sum(private_params(c) > cap for c, _ in free_kids) >= 10
    assert all(private_params(c) <= cap for c, _ in capped_kids)
    redrawn = [rec for _, rec in capped_kids if any(r.startswith("drawn ") for r in rec)]
    assert redrawn and all(rec[-1].endswith(f"max_private_params {cap:,}") for rec in redrawn)
    # the cap keeps what stays within it: mutations of hyperparameters and smaller ranks
    changes = {r.split(":")[0] for _, rec in capped_kids for r in rec}
    assert "lowrank_rank" in changes
    # a child within the cap on its first draw is the same child the uncapped search builds
    first = [i for i, (_, rec) in enumerate(capped_kids) if not any("draw" in r for r in rec)]
    assert first
    for i in first:
        (a, ra), (b, rb) = free_kids[i], capped_kids[i]
        assert ra == rb and a.hparams == b.hparams
        assert [c.name for c in a.components] == [c.name for c in b.components]


def test_a_cap_nothing_fits_under_falls_back_to_the_unmutated_child():
    state, s = new_state(1)
    p = start_path(state, s)
    child, rec = assemble_child(state, p, "a", CLASSES, {}, True, np.random.default_rng(0), OPS, s)
    assert rec[0] == f"unmutated: {CAP_DRAWS} draws over max_private_params 1"
    # the parent's own trainable components, copied; nothing else changes
    assert child.hparams == {**p.hparams, "num_classes": CLASSES}
    assert [c.name for c in child.components] == [c.name for c in p.components]
    assert private_params(child) == private_params(p)


def test_a_cap_that_never_binds_changes_nothing():
    """Same ids, records and hyperparameters as no cap: the random stream is not touched."""
    a_state, a = new_state(None)
    b_state, b = new_state(10**12)
    ka = children(a_state, a, start_path(a_state, a))
    kb = children(b_state, b, start_path(b_state, b))
    for (x, rx), (y, ry) in zip(ka, kb, strict=True):
        assert (x.id, rx, x.hparams) == (y.id, ry, y.hparams)
        assert [c.id for c in x.components] == [c.id for c in y.components]


@pytest.mark.parametrize("seed", [0, 1])
def test_an_evolution_under_the_cap_keeps_every_path_within_it(seed):
    state, s = new_state("start", prob=0.3, seed=seed)
    s.task_iterations, s.candidates_per_iteration, s.generation_batch_size = 3, 6, 3
    trainer = FakeTrainer(quality=lambda c: 0.3 + 0.01 * numel_private(c) / 1e4)
    evolve(state, {"a": CLASSES, "b": 4}, s, trainer, NullRecorder(), OPS)
    for child in trainer.trained:
        assert private_params(child) <= private_cap(
            state, child.task, child.hparams["num_classes"], {}, s
        )
    # the fake rewards size, so without the cap the search grows past it
    free_state, free = new_state(None, prob=0.3, seed=seed)
    free.task_iterations, free.candidates_per_iteration, free.generation_batch_size = 3, 6, 3
    free_trainer = FakeTrainer(quality=lambda c: 0.3 + 0.01 * numel_private(c) / 1e4)
    evolve(free_state, {"a": CLASSES, "b": 4}, free, free_trainer, NullRecorder(), OPS)
    assert any(
        private_params(c) > private_cap(state, c.task, c.hparams["num_classes"], {}, s)
        for c in free_trainer.trained
    )


def numel_private(path):
    return sum(numel(c.shapes) for c in path.components if c.trainable)


def test_config_takes_a_number_or_start_and_refuses_the_rest():
    from munet.config import FROZEN_KEYS, Config, build_config, parse_overrides, with_legacy
    from munet.errors import ConfigError

    assert Config().max_private_params == 0 and with_legacy({})["max_private_params"] == 0
    assert "max_private_params" in FROZEN_KEYS
    for good, value in [("start", "start"), ("75656", 75656), ("0", 0)]:
        cfg = build_config(overrides=parse_overrides([f"max_private_params={good}"]))
        assert cfg.max_private_params == value
    for bad in ["-1", "lots", "true", "1.5"]:
        with pytest.raises(ConfigError) as err:
            build_config(overrides=parse_overrides([f"max_private_params={bad}"]))
        assert "max_private_params" in str(err.value) and "\n" not in str(err.value)
