"""Beyond the paper (search: extended): low-rank components and the optimizer choice in the pure
core. Shapes, accounting, inheritance, rank changes, and that the paper search never proposes
them."""

import numpy as np

from munet.system.arch import RootArch, numel
from munet.system.assemble import assemble_child
from munet.system.hparams import (
    BASE_SEARCH_SPACE,
    default_hparams,
    mutate_lowranks,
    peak_lr,
    search_space_for,
)
from munet.system.path import Path
from munet.system.score import accounted_params, private_params
from munet.system.state import NullOps, Settings, make_root_state

TI3 = RootArch(
    embed_dim=192, depth=3, num_heads=3, mlp_hidden_dim=768, patch_size=16, image_size=32
)
ROOT_PARAMS = {n: None for n in TI3.component_names({"num_layers": 3})}
OPS = NullOps()


def new_state(search="extended", prob=0.0, **kw):
    s = Settings(
        space=search_space_for(3, 16, search=search),
        defaults=default_hparams("spec", search),
        mutation_prob=prob,
        mutate_lowranks=search == "extended",
        **kw,
    )
    return make_root_state(TI3, ROOT_PARAMS, s.defaults, OPS), s


def stand_in(parent, **hparams):
    """A parent whose hyperparameters ask for the given values (components unchanged)."""
    return Path(-1, parent.task, parent, {**parent.hparams, **hparams}, parent.components)


def child_of(state, parent, task, settings, mutate=False, seed=0):
    rng = np.random.default_rng(seed)
    return assemble_child(state, parent, task, 10, {}, mutate, rng, OPS, settings)


def test_lowrank_shapes_and_parameter_counts():
    # per rank: qkv r(d + 3d), proj r(d + d), fc1 r(d + h), fc2 r(h + d) = r(8d + 2h)
    for r in (2, 4, 8, 16):
        assert numel(TI3.shapes("lowrank_1", {"lowrank_rank": r})) == 3072 * r
    shapes = TI3.shapes("lowrank_0", {"lowrank_rank": 4})
    assert shapes["attn.qkv.lora_A"] == (4, 192) and shapes["attn.qkv.lora_B"] == (576, 4)
    assert shapes["mlp.fc2.lora_A"] == (4, 768) and shapes["mlp.fc2.lora_B"] == (192, 4)
    hp = {"num_layers": 3, "lowrank_layers": [0, 2], "adapter_layers": [2]}
    assert TI3.component_names(hp)[3:10] == [
        "encoderblock_0",
        "lowrank_0",
        "encoderblock_1",
        "residual_adapter_2",
        "encoderblock_2",
        "lowrank_2",
        "encoder_norm",
    ]
    # FLOPs: the block's, plus x·Aᵀ·Bᵀ per token (5 tokens at 32 px)
    flops = {"ds_image_size": 32, "lowrank_rank": 8, "lowrank_layers": [1]}
    assert TI3.stage_flops("encoderblock_1", flops) - TI3.stage_flops("encoderblock_0", flops) == (
        2 * 5 * 8 * 3072
    )


def test_a_new_lowrank_is_private_and_accounted_like_an_adapter():
    state, s = new_state()
    base, _ = child_of(state, state.root, "a", s)
    child, _ = child_of(state, stand_in(state.root, lowrank_layers=[0, 2]), "a", s)
    lowranks = [c for c in child.components if c.name.startswith("lowrank_")]
    assert [c.name for c in lowranks] == ["lowrank_0", "lowrank_2"]
    assert all(c.trainable and c.origin == "new" for c in lowranks)
    # the blocks stay the root's frozen objects
    assert child.component("encoderblock_0") is state.root.component("encoderblock_0")
    assert accounted_params(child) - accounted_params(base) == 2 * 3072 * 8
    assert private_params(child) - private_params(base) == 2 * 3072 * 8


def test_children_inherit_clone_and_share_lowranks_and_a_rank_change_reinitialises():
    state, s = new_state()
    a1, _ = child_of(state, stand_in(state.root, lowrank_layers=[1]), "a", s)
    a1.metrics["quality"] = 0.5
    state.accept(a1)
    state.end_iteration("a", s)
    mine = a1.component("lowrank_1")
    assert mine.locks == {"a"}
    # another task reuses it frozen: shared object, accounted half to each task
    b1, _ = child_of(state, a1, "b", s)
    assert b1.component("lowrank_1") is mine
    assert accounted_params(b1) - accounted_params(child_of(state, state.root, "b", s)[0]) == (
        3072 * 8 / 2
    )
    # the owner's next iteration unlocks it: its child trains a clone
    state.begin_iteration("a")
    a2, _ = child_of(state, a1, "a", s)
    assert a2.component("lowrank_1").origin == f"clone:{mine.id}"
    assert a2.component("lowrank_1") is not mine
    # rank 8 -> 4: nothing of rank 4 up the ancestry, so a new one
    a3, _ = child_of(state, stand_in(a1, lowrank_rank=4), "a", s)
    assert a3.component("lowrank_1").origin == "new"
    assert a3.component("lowrank_1").shapes["attn.qkv.lora_A"] == (4, 192)
    # and back to 8: the ancestor's rank-8 delta is found again (walking up past rank 4)
    a4, _ = child_of(state, stand_in(a3, lowrank_rank=8), "a", s)
    assert a4.component("lowrank_1").origin == f"clone:{mine.id}"


def test_lowranks_are_added_by_mutation_and_dropped_with_their_block():
    rng = np.random.default_rng(0)
    hp, rec = mutate_lowranks({"num_layers": 2, "lowrank_layers": [0, 2]}, 0.0, rng)
    assert hp["lowrank_layers"] == [0] and rec == ["lowrank removed with block 2"]
    hp, rec = mutate_lowranks({"num_layers": 3, "lowrank_layers": [1]}, 1.0, rng)
    assert hp["lowrank_layers"] == [0, 1, 2]
    assert rec == ["lowrank added to block 0", "lowrank added to block 2"]


def test_paper_search_never_proposes_lowranks_or_adamw_and_extended_does():
    def proposals(search):
        state, s = new_state(search, prob=0.5, force_finetune=())
        seen = {"names": set(), "opt": set(), "keys": set()}
        for seed in range(40):
            child, _ = child_of(state, state.root, "a", s, mutate=True, seed=seed)
            seen["names"] |= {c.name.rstrip("0123456789") for c in child.components}
            seen["opt"].add(child.hparams.get("opt_name"))
            seen["keys"] |= set(child.hparams)
        return seen

    paper = proposals("paper")
    assert "lowrank_" not in paper["names"] and paper["opt"] == {None}
    assert not {"opt_name", "opt_adamw_lr", "lowrank_rank", "lowrank_layers"} & paper["keys"]
    assert set(search_space_for(3, 16)) == set(BASE_SEARCH_SPACE) | {"num_layers", "ds_image_size"}
    extended = proposals("extended")
    assert "lowrank_" in extended["names"] and extended["opt"] == {"sgd", "adamw"}


def test_peak_learning_rate_follows_the_optimizer():
    hp = {"opt_lr": 0.01, "opt_adamw_lr": 0.002}
    assert peak_lr(hp) == 0.01  # no opt_name: the paper's SGD
    assert peak_lr({**hp, "opt_name": "sgd"}) == 0.01
    assert peak_lr({**hp, "opt_name": "adamw"}) == 0.002


def test_the_lowrank_start_gives_the_roots_children_a_delta_on_every_block_and_adamw():
    lowrank = default_hparams("safe", "extended", "lowrank", depth=3)
    head = default_hparams("safe", "extended", "head", depth=3)
    assert lowrank["lowrank_layers"] == [0, 1, 2] and lowrank["opt_name"] == "adamw"
    assert head["lowrank_layers"] == [] and head["opt_name"] == "sgd"
    assert default_hparams("safe", "paper", "lowrank", 3) == default_hparams("safe", "paper")
    s = Settings(space=search_space_for(3, 16, search="extended"), defaults=lowrank)
    state = make_root_state(TI3, ROOT_PARAMS, s.defaults, OPS)
    assert state.root.hparams["lowrank_layers"] == []  # the root itself has no delta
    seed, _ = child_of(state, state.root, "a", s)
    assert seed.hparams["lowrank_layers"] == [0, 1, 2] and seed.hparams["opt_name"] == "adamw"
    assert [c.name for c in seed.trainable_components()] == [
        "lowrank_0",
        "lowrank_1",
        "lowrank_2",
        "head",
    ]
    assert seed.component("encoderblock_1") is state.root.component("encoderblock_1")
    # only the root's children take the config's start: a path's child keeps its parent's
    s_head = Settings(space=s.space, defaults=head)
    assert child_of(state, seed, "a", s_head)[0].hparams["lowrank_layers"] == [0, 1, 2]
    assert child_of(state, state.root, "a", s_head)[0].hparams["lowrank_layers"] == []


def test_a_root_child_starts_with_the_adapters_the_config_asks_for():
    defaults = {**default_hparams("safe", "paper"), "adapter_layers": [1]}
    s = Settings(space=search_space_for(3, 16), defaults=defaults)
    state = make_root_state(TI3, ROOT_PARAMS, s.defaults, OPS)
    child, _ = child_of(state, state.root, "a", s)
    assert child.hparams["adapter_layers"] == [1]
    assert [c.name for c in child.trainable_components()] == ["residual_adapter_1", "head"]


def test_transfer_lowrank_continues_another_tasks_deltas_as_private_copies():
    lowrank = default_hparams("safe", "extended", "lowrank", depth=3)
    space = search_space_for(3, 16, search="extended")
    state = make_root_state(TI3, ROOT_PARAMS, lowrank, OPS)
    off = Settings(space=space, defaults=lowrank, mutate_lowranks=True)
    on = Settings(space=space, defaults=lowrank, mutate_lowranks=True, transfer_lowrank=True)
    # task a's retained path has deltas on blocks 0 and 2 only (block 1's was never added)
    a1, _ = child_of(state, stand_in(state.root, lowrank_layers=[0, 2]), "a", off)
    a1.metrics["quality"] = 0.5
    state.accept(a1)
    state.end_iteration("a", off)
    # the spec's reuse: task b's seed child shares a's deltas frozen and trains its head only
    shared, record = child_of(state, a1, "b", off)
    assert [c.name for c in shared.trainable_components()] == ["head"] and record == []
    assert shared.component("lowrank_0") is a1.component("lowrank_0")
    # transfer: copies of a's deltas, a new one on block 1, and a's path itself untouched
    seed, record = child_of(state, a1, "b", on)
    assert seed.hparams["lowrank_layers"] == [0, 1, 2]
    assert [c.name for c in seed.trainable_components()] == [
        "lowrank_0",
        "lowrank_1",
        "lowrank_2",
        "head",
    ]
    assert seed.component("lowrank_0").origin == f"clone:{a1.component('lowrank_0').id}"
    assert seed.component("lowrank_1").origin == "new"
    assert record == ["clone lowrank_0 (transfer)", "clone lowrank_2 (transfer)"]
    assert a1.component("lowrank_0").locks == {"a"} and a1.hparams["lowrank_layers"] == [0, 2]
    assert seed.component("encoderblock_1") is a1.component("encoderblock_1")  # blocks stay shared
    # the rule is for paths started from another task's: a's own children and the root's as before
    state.begin_iteration("a")
    own, record = child_of(state, a1, "a", on)
    assert own.hparams["lowrank_layers"] == [0, 2] and record == []
    assert child_of(state, state.root, "b", on)[0].hparams["lowrank_layers"] == [0, 1, 2]
