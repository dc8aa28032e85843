"""Baselines as configurations of the engine (spec §7.4): trainable sets, budget, end to end."""

from __future__ import annotations

import csv
from collections import defaultdict

import pytest
from tiny import TI3, FakeTrainer, NullRecorder, pure_state, stored, tiny_args

from munet.cli import main
from munet.config import build_config
from munet.errors import ConfigError
from munet.store.check import check_locks
from munet.system.baselines import (
    BaselineBudget,
    BaselinePolicy,
    Flops,
    Method,
    assemble_baseline_child,
    check_method_fits,
    configure_method,
    image_flops,
    matched_budget,
    parse_method,
    scaled_budget,
    trainable_names,
)
from munet.system.component import NOT_TRAINABLE
from munet.system.evolve import evolve
from munet.system.policy import MUNET_POLICY
from munet.system.score import accounted_params
from munet.system.state import NullOps

ROOT_NAMES = ["embedding", "cls", "posembed_input", "encoderblock_0", "encoderblock_1"]
ROOT_NAMES += ["encoderblock_2", "encoder_norm"]


def child(method: str, task: str = "a", classes: int = 10):
    state, s = pure_state()
    c, rec = assemble_baseline_child(state, task, classes, {}, parse_method(method), NullOps(), s)
    return state, c, rec


def test_parse_method_accepts_the_five_forms_and_names_bad_values():
    assert parse_method("munet") == Method("munet")
    assert parse_method("munet-no-autotune").auto_tune is False
    assert parse_method("finetune-all") == Method("finetune-all")
    assert parse_method("freeze-bottom:2") == Method("freeze-bottom", 2)
    assert parse_method("adapters:16") == Method("adapters", 16)
    assert str(parse_method("adapters:16")) == "adapters:16"
    assert parse_method("munet").evolves and not parse_method("finetune-all").evolves
    for bad in ("sgd", "adapters", "adapters:0", "freeze-bottom:-1", "freeze-bottom:x", "munet:1"):
        with pytest.raises(ValueError, match="method="):
            parse_method(bad)
    with pytest.raises(ConfigError, match="unknown; use one of munet"):
        build_config(None, {"method": "lora"})
    assert build_config(None, {"method": "freeze-bottom:2"}).method == "freeze-bottom:2"
    with pytest.raises(ConfigError, match="set async_tasks=false"):
        build_config(None, {"method": "adapters:8", "executor": "ray", "async_tasks": True})
    with pytest.raises(ValueError, match="freeze-bottom:0..3"):
        check_method_fits(Method("freeze-bottom", 4), 3)


def test_finetune_all_clones_every_root_component_and_adds_a_head():
    state, c, rec = child("finetune-all")
    names = [x.name for x in c.components]
    assert names == ROOT_NAMES[:-1] + ["encoder_norm", "head"]
    assert [x.name for x in c.trainable_components()] == names
    for x in c.components:
        if x.name == "head":
            assert x.origin == "new" and x.shapes["weight"] == (10, 192)
        else:
            assert x.origin == f"clone:{state.root.component(x.name).id}"
    assert c.parent is state.root and c.generation == 1
    assert rec == [
        "finetune-all trains embedding, cls, posembed_input, encoderblock_0, encoderblock_1, "
        "encoderblock_2, encoder_norm, head"
    ]


def test_freeze_bottom_shares_the_bottom_with_the_root():
    state, c, _ = child("freeze-bottom:2")
    assert [x.name for x in c.trainable_components()] == ["encoderblock_2", "encoder_norm", "head"]
    frozen = ["embedding", "cls", "posembed_input", "encoderblock_0", "encoderblock_1"]
    for name in frozen:
        assert c.component(name) is state.root.component(name)
        assert c.component(name).locks == {NOT_TRAINABLE}
    assert (
        c.component("encoderblock_2").origin == f"clone:{state.root.component('encoderblock_2').id}"
    )
    _, c0, _ = child("freeze-bottom:0")
    assert [x.name for x in c0.trainable_components()] == [
        "encoderblock_0",
        "encoderblock_1",
        "encoderblock_2",
        "encoder_norm",
        "head",
    ]
    _, c3, _ = child("freeze-bottom:3")
    assert [x.name for x in c3.trainable_components()] == ["encoder_norm", "head"]


def test_adapters_go_before_every_block_and_train_with_norm_and_head():
    state, c, _ = child("adapters:16")
    assert [x.name for x in c.components] == [
        "embedding",
        "cls",
        "posembed_input",
        "residual_adapter_0",
        "encoderblock_0",
        "residual_adapter_1",
        "encoderblock_1",
        "residual_adapter_2",
        "encoderblock_2",
        "encoder_norm",
        "head",
    ]
    assert [x.name for x in c.trainable_components()] == [
        "residual_adapter_0",
        "residual_adapter_1",
        "residual_adapter_2",
        "encoder_norm",
        "head",
    ]
    assert c.hparams["adapter_layers"] == [0, 1, 2] and c.hparams["adapter_dim"] == 16
    assert c.component("residual_adapter_1").shapes["fc1.weight"] == (16, 192)
    assert c.component("residual_adapter_1").origin == "new"
    assert c.component("encoderblock_0") is state.root.component("encoderblock_0")
    assert trainable_names(Method("adapters", 8), ["encoderblock_0", "head"]) == ["head"]


def test_matched_budget_gives_baselines_exactly_munets_candidate_intervals():
    # defaults: 2 iterations × 8 candidates × V=4 = 64 intervals = 4 replicas × 16
    assert matched_budget(2, 8, 4, 4) == matched_budget(2, 8, 4, 4).__class__(4, 16)
    b = matched_budget(2, 3, 3, 2)  # the tiny test config
    assert (b.replicas, b.validations) == (3, 4)
    b = matched_budget(2, 3, 4, 2)  # 6 candidates do not split into batches of 4: use 2
    assert (b.replicas, b.validations) == (2, 6)
    for t, c, g, v in [(2, 8, 4, 4), (1, 5, 3, 2), (3, 7, 8, 5)]:
        b = matched_budget(t, c, g, v)
        assert b.replicas * b.validations == t * c * v and b.replicas <= g
    # baseline_replicas: 1 is one run of every image muNet's candidates train
    for t, c, g, v in [(2, 3, 3, 8), (1, 5, 3, 2), (3, 7, 8, 5)]:
        assert matched_budget(t, c, g, v, replicas=1) == BaselineBudget(1, t * c * v)
    assert matched_budget(2, 3, 3, 8, replicas=4) == BaselineBudget(4, 12)  # 48 / 4
    assert matched_budget(1, 5, 3, 2, replicas=3) == BaselineBudget(3, 3)  # 10 / 3, rounded


def test_baseline_replicas_sets_the_replicas_of_a_baseline_run(tmp_path, two_task_system):
    d = tmp_path / "one"
    args = tiny_args(d, "builtin:digits,builtin:glyph_digits", "baseline_replicas=1")
    assert main([*args, "--method", "finetune-all"]) == 0
    rows = list(csv.DictReader(open(d / "candidates.csv")))
    munet_rows = list(csv.DictReader(open(two_task_system / "candidates.csv")))
    assert [r["task"] for r in rows] == ["digits", "glyph_digits"]  # one run per task
    assert by_task(rows, "images") == by_task(munet_rows, "images")
    assert all(len(rec.history) == 2 * 3 * 2 for rec in stored(d)[0].candidate_rows())
    with pytest.raises(ConfigError, match="baseline_replicas=-1 must be >= 0"):
        build_config(None, {"baseline_replicas": -1})


def test_baseline_runs_in_the_unchanged_loop_as_fixed_root_children():
    state, s = pure_state(task_iterations=2, candidates_per_iteration=4, generation_batch_size=2)
    policy, s, v = configure_method(Method("freeze-bottom", 1), s, validations=3)
    assert isinstance(policy, BaselinePolicy) and (s.candidates_per_iteration, v) == (2, 12)
    trainer = FakeTrainer(quality=lambda c: 0.5 + 0.01 * c.id)
    evolve(state, {"a": 3, "b": 5}, s, trainer, NullRecorder(), NullOps(), policy=policy)
    assert [c.task for c in trainer.trained] == ["a", "a", "b", "b"]
    assert all(c.parent is state.root for c in trainer.trained)
    assert state.iterations_done == {"a": 1, "b": 1}
    a, b = state.retained("a"), state.retained("b")
    assert a is trainer.trained[1] and b is trainer.trained[3]  # higher id, higher fake quality
    assert check_locks(state) == []
    shared = [x for x in a.components if x in b.components]
    assert [x.name for x in shared] == ["embedding", "cls", "posembed_input", "encoderblock_0"]
    assert all(x.locks == {NOT_TRAINABLE, "a", "b"} for x in shared)
    private = sum(x.size for x in a.components if x not in shared)
    assert accounted_params(a) == sum(x.size for x in shared) / 2 + private
    # muNet itself is left as configured
    s2 = pure_state()[1]
    p3, s3, v3 = configure_method(Method("munet"), s2, 4)
    assert p3 is MUNET_POLICY and s3 is s2 and v3 == 4


def by_task(rows, key):
    out = defaultdict(int)
    for r in rows:
        out[r["task"]] += int(r[key])
    return dict(out)


def test_freeze_bottom_end_to_end_matches_munets_training_images(tmp_path, two_task_system):
    d = tmp_path / "fb"
    assert (
        main(tiny_args(d, "builtin:digits,builtin:glyph_digits", "--method", "freeze-bottom:1"))
        == 0
    )
    rows = list(csv.DictReader(open(d / "candidates.csv")))
    munet_rows = list(csv.DictReader(open(two_task_system / "candidates.csv")))
    # tiny config: 2 iterations × 3 candidates × 2 intervals -> 3 replicas × 4 intervals
    assert by_task(rows, "images") == by_task(munet_rows, "images")
    assert [r["task"] for r in rows] == ["digits"] * 3 + ["glyph_digits"] * 3
    assert {r["parent_id"] for r in rows} == {"0"} and {r["seed_phase"] for r in rows} == {"True"}
    store, state = stored(d)
    assert store.stored_config()["method"] == "freeze-bottom:1"
    for rec in store.candidate_rows():
        comps = {c.id: c for c in state.live_components().values()}
        names = [comps[i].name for i in rec.trainable_ids if i in comps]
        if rec.accepted and rec.path_id == state.retained(rec.task).id:
            assert names == ["encoderblock_1", "encoder_norm", "head"]
        assert len(rec.history) == 4
    assert check_locks(state) == []
    # resume refuses a method change
    assert main(tiny_args(d, "builtin:digits,builtin:glyph_digits", "--method", "munet")) == 2


def test_baseline_budget_scales_each_replicas_intervals_rounded_and_at_least_one():
    b = matched_budget(2, 8, 4, 4)  # 4 replicas x 16 intervals
    assert scaled_budget(b, 1.0) is b
    assert scaled_budget(b, 0.5) == BaselineBudget(4, 8)
    assert scaled_budget(b, 1.3) == BaselineBudget(4, 21)  # round(20.8)
    assert scaled_budget(b, 0.001) == BaselineBudget(4, 1)
    _, s = pure_state(task_iterations=2, candidates_per_iteration=4, generation_batch_size=2)
    _, _, v = configure_method(Method("adapters", 4), s, validations=3, budget_scale=0.5)
    assert v == 6  # 12 matched intervals x 0.5
    _, _, v = configure_method(Method("munet"), s, validations=3, budget_scale=0.5)
    assert v == 3  # muNet is never scaled
    with pytest.raises(ConfigError, match="baseline_budget"):
        build_config(None, {"baseline_budget": 0})


def test_image_flops_follow_the_trainers_rule_forward_below_the_lowest_trainable_stage():
    hp = {"num_layers": 3, "ds_image_size": 32, "num_classes": 10, "adapter_layers": [1]}
    hp["adapter_dim"] = 8
    names = TI3.component_names(hp)
    stages = [n for n in names if n not in ("cls", "posembed_input")]
    f = {n: TI3.stage_flops(n, hp) for n in stages}
    total = sum(f.values())
    assert image_flops(TI3, hp, names) == Flops(3 * total, total)  # finetune-all
    assert image_flops(TI3, hp, ["cls"]) == Flops(3 * total, total)  # cls joins the embedding
    low = f["embedding"] + f["encoderblock_0"]
    assert image_flops(TI3, hp, ["residual_adapter_1", "head"]) == Flops(
        low + 3 * (total - low), total
    )
    assert image_flops(TI3, hp, []) == Flops(total, total)
