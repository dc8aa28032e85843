"""Generation-batch fusion: shared frozen prefixes computed once, results bit-identical."""

from __future__ import annotations

import torch
from tiny import micro_state, root_children, stage_names

from munet.data.load import load_tasks
from munet.train.trainer import Trainer, TrainSettings


def generation(mutate: bool, n: int = 4):
    root, state, s, ds = micro_state(mutation_prob=0.5)
    return root, root_children(state, s, ds, n, mutate), ds


def train(root, kids, ds, fuse):
    settings = TrainSettings(batch_size=16, validations=2, interval_cap=4, fuse=fuse)
    trainer = Trainer(root.arch, load_tasks(["builtin:digits"]), settings)
    calls = []
    from munet.model.vit import PathModel

    original = PathModel.frozen_prefix

    def counting(self, images):
        calls.append(self.grad_from)
        return original(self, images)

    PathModel.frozen_prefix = counting
    try:
        results = trainer.train_generation("digits", kids, ds, seed=3)
    finally:
        PathModel.frozen_prefix = original
    return results, calls


def assert_identical(a, b):
    for ra, rb in zip(a, b, strict=True):
        assert ra.quality == rb.quality and ra.history == rb.history
        assert ra.params.keys() == rb.params.keys()
        for cid in ra.params:
            for k in ra.params[cid]:
                assert torch.equal(ra.params[cid][k], rb.params[cid][k])


def test_seed_phase_candidates_share_their_whole_body_and_train_identically():
    root, kids, ds = generation(mutate=False)
    fused, fused_calls = train(root, kids, ds, fuse=True)
    root, kids, ds = generation(mutate=False)
    plain, plain_calls = train(root, kids, ds, fuse=False)
    assert_identical(fused, plain)
    # 4 head-only children: one prefix per batch fused, four unfused
    assert len(plain_calls) == 4 * len(fused_calls)


def test_mutated_candidates_fuse_what_they_share_and_train_identically():
    root, kids, ds = generation(mutate=True)
    keys = {tuple(c.id for c in k.components if not c.trainable) for k in kids}
    fused, fused_calls = train(root, kids, ds, fuse=True)
    root, kids, ds = generation(mutate=True)
    plain, plain_calls = train(root, kids, ds, fuse=False)
    assert_identical(fused, plain)
    assert len(fused_calls) < len(plain_calls) or len(keys) == len(kids)


def test_each_candidate_counts_its_own_flops_fused_or_not():
    root, kids, ds = generation(mutate=True)
    fused, _ = train(root, kids, ds, fuse=True)
    for kid, res in zip(kids, fused, strict=True):
        hp = kid.hparams
        stages = stage_names(kid)
        flops = [root.arch.stage_flops(s, hp) for s in stages]
        trainable = {c.name for c in kid.trainable_components()}
        stage_of = {"cls": "embedding", "posembed_input": "embedding"}
        lowest = min(stages.index(stage_of.get(n, n)) for n in trainable)
        per_train = sum(flops[:lowest]) + 3 * sum(flops[lowest:])
        assert res.flops >= per_train * res.images
        evals = res.flops - per_train * res.images
        assert evals > 0 and evals % sum(flops) == 0  # whole validation forwards
    plain, _ = train(*generation(mutate=True), fuse=False)
    assert [r.flops for r in plain] == [r.flops for r in fused]
