"""``score_split: full``: the best snapshot (picked on the validation subset) is scored on the
whole validation split, and that score is the candidate's quality."""

from __future__ import annotations

import pytest
import torch
from tiny import micro_state, root_children, stage_names

from munet.data.load import load_tasks
from munet.data.pipeline import prepare_eval
from munet.model.vit import build_model
from munet.train.trainer import Trainer, TrainSettings


def train(split: str):
    root, state, s, ds = micro_state(mutation_prob=0.5)
    kids = root_children(state, s, ds, 3, mutate=True)
    data = load_tasks(["builtin:digits"])
    settings = TrainSettings(batch_size=16, validations=2, interval_cap=4, score_split=split)
    results = Trainer(root.arch, data, settings).train_generation("digits", kids, ds, seed=3)
    return root, kids, data["digits"], results


def accuracy_with(root, kid, params, x, y):
    """Accuracy of ``kid`` with its trainable components set to ``params``, computed apart
    from the trainer (one forward over all of ``x``)."""
    for c in kid.trainable_components():
        c.params = params[c.id]
    model = build_model(root.arch, kid.hparams, kid.components, trainable=False)
    with torch.no_grad():
        pred = model(prepare_eval(x, int(kid.hparams["ds_image_size"]))).argmax(-1)
    return float((pred == y).float().mean())


def test_full_split_scores_the_subset_picked_snapshot_on_every_validation_example():
    _, _, _, subset = train("subset")
    root, kids, data, full = train("full")
    assert len(data.val_y) > 160  # the subset (10 batches of 16) leaves examples out
    for kid, a, b in zip(kids, subset, full, strict=True):
        # the same training and the same snapshot: only the quality differs
        assert a.history == b.history and a.quality == max(a.history)
        for cid in a.params:
            for k in a.params[cid]:
                assert torch.equal(a.params[cid][k], b.params[cid][k])
        expected = accuracy_with(root, kid, b.params, data.val_x, data.val_y)
        assert b.quality == pytest.approx(expected, abs=1e-6)
        # one more forward of every validation example, counted
        evals = b.flops - a.flops
        per_image = sum(root.arch.stage_flops(n, kid.hparams) for n in stage_names(kid))
        assert evals == pytest.approx(per_image * len(data.val_y))


def test_score_split_is_frozen_full_by_default_and_subset_for_older_systems():
    from munet.config import FROZEN_KEYS, Config, build_config, parse_overrides, with_legacy
    from munet.errors import ConfigError

    assert Config().score_split == "full" and with_legacy({})["score_split"] == "subset"
    assert "score_split" in FROZEN_KEYS
    with pytest.raises(ConfigError) as err:
        build_config(overrides=parse_overrides(["score_split=all"]))
    assert "use full (score the best snapshot" in str(err.value) and "\n" not in str(err.value)


def test_hits_are_the_best_snapshots_right_answers_on_the_whole_split():
    from munet.system.noise import unpack

    root, state, s, ds = micro_state(mutation_prob=0.5)
    kids = root_children(state, s, ds, 2, mutate=True)
    data = load_tasks(["builtin:digits"])
    settings = TrainSettings(
        batch_size=16, validations=2, interval_cap=4, score_split="full", hits=True
    )
    results = Trainer(root.arch, data, settings).train_generation("digits", kids, ds, seed=3)
    d = data["digits"]
    for kid, res in zip(kids, results, strict=True):
        right = unpack(res.hits)
        assert right.size == len(d.val_y)
        assert right.mean() == pytest.approx(res.quality, abs=1e-6)
        for c in kid.trainable_components():
            c.params = res.params[c.id]
        model = build_model(root.arch, kid.hparams, kid.components, trainable=False)
        with torch.no_grad():
            logits = model(prepare_eval(d.val_x, int(kid.hparams["ds_image_size"])))
        # compared where the top two logits are apart: a near-tie may flip between the
        # trainer's batches and this one forward on another CPU
        top2 = logits.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1] > 1e-4).numpy()
        assert clear.mean() > 0.95
        apart = (logits.argmax(-1) == d.val_y).numpy()
        assert apart[clear].tolist() == right[clear].tolist()
    # without the flag (the default) nothing is collected
    plain = Trainer(root.arch, data, TrainSettings(batch_size=16, validations=2, interval_cap=4))
    assert all(r.hits is None for r in plain.train_generation("digits", kids, ds, seed=3))


def test_accept_z_needs_the_whole_split_and_a_sane_value():
    from munet.config import FROZEN_KEYS, Config, build_config, parse_overrides, with_legacy
    from munet.errors import ConfigError

    assert Config().accept_z == 0.0 and with_legacy({})["accept_z"] == 0.0
    assert "accept_z" in FROZEN_KEYS
    for bad, says in [
        (["accept_z=-1"], "use 0 (the spec) or z > 0"),
        (["accept_z=1", "score_split=subset"], "set score_split=full or accept_z=0"),
    ]:
        with pytest.raises(ConfigError) as err:
            build_config(overrides=parse_overrides(bad))
        assert says in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="use 0 \\(the spec\\) or z > 0"):
        Config(accept_z=float("inf")).validate()
    assert build_config(overrides=parse_overrides(["accept_z=1.5"])).accept_z == 1.5
