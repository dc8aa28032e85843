"""``race_validations``: the candidates of a generation batch race for R validation intervals,
then only the best so far trains on, for the intervals the others leave unused."""

from __future__ import annotations

from collections import defaultdict

import pytest
from tiny import micro_state, root_children, stored, tiny_args

import munet.train.trainer as trainer_module
from munet.cli import main
from munet.config import FROZEN_KEYS, Config, build_config, parse_overrides, with_legacy
from munet.data.load import load_tasks
from munet.errors import ConfigError
from munet.train.trainer import Trainer, TrainSettings

DATA = load_tasks(["builtin:digits"])
BATCH, CAP = 16, 4
INTERVAL = TrainSettings(batch_size=BATCH, interval_cap=CAP).interval(len(DATA["digits"].train_y))


def kids(schedule: str | None = None):
    root, state, s, ds = micro_state(mutation_prob=0.5)
    children = root_children(state, s, ds, 3, mutate=True)
    if schedule:
        for c in children:
            c.hparams["opt_lr_schedule"] = schedule
    return root, children, ds


def train(race: int, validations: int = 3, schedule: str | None = "constant"):
    root, children, ds = kids(schedule)
    settings = TrainSettings(
        batch_size=BATCH, validations=validations, interval_cap=CAP, race_validations=race
    )
    return Trainer(root.arch, DATA, settings).train_generation("digits", children, ds, seed=3)


def test_race_length_gives_the_winner_the_intervals_the_others_leave_unused():
    def length(r, v, n):
        return TrainSettings(validations=v, race_validations=r).race_length(n)

    assert length(0, 8, 3) == 8  # no race: the spec
    assert length(2, 8, 3) == 3 * 8 - 2 * 2
    assert length(1, 4, 2) == 7
    assert length(2, 8, 1) == 8  # a lone candidate has nobody to race
    assert length(8, 8, 3) == 8  # R >= V: no race


def test_the_best_at_the_rung_trains_on_and_the_others_stop_with_their_snapshot():
    plain, raced = train(0), train(1)
    # the rung picks the best validation so far, the first of equals
    rung = [r.history[0] for r in raced]
    winner = max(range(3), key=lambda i: (rung[i], -i))
    assert [len(r.history) for r in raced] == [7 if i == winner else 1 for i in range(3)]
    assert [r.images for r in raced] == [
        (7 if i == winner else 1) * INTERVAL * BATCH for i in range(3)
    ]
    # the race moves images from the losers to the winner: the batch trains as many in all
    assert sum(r.images for r in raced) == sum(r.images for r in plain)
    for i, (p, r) in enumerate(zip(plain, raced, strict=True)):
        # a constant learning rate does not depend on the length: the steps both ran are the
        # same steps on the same batches, so they validate the same
        shared = min(len(p.history), len(r.history))
        assert r.history[:shared] == p.history[:shared]
        assert r.quality == max(r.history)
        if i != winner:
            assert r.params.keys() == p.params.keys()  # a stopped candidate keeps its snapshot
    assert raced[winner].flops > plain[winner].flops
    assert all(
        r.flops < p.flops for i, (p, r) in enumerate(zip(plain, raced, strict=True)) if i != winner
    )


def test_the_learning_rate_is_scheduled_over_the_winners_whole_length(monkeypatch):
    totals = set()
    original = trainer_module.learning_rate

    def recording(step, hp, total, interval):
        totals.add((total, interval))
        return original(step, hp, total, interval)

    monkeypatch.setattr(trainer_module, "learning_rate", recording)
    train(2, validations=4, schedule="cosine")
    assert totals == {(INTERVAL * (3 * 4 - 2 * 2), INTERVAL)}


def test_race_validations_is_frozen_off_for_older_systems_and_checked():
    assert "race_validations" in FROZEN_KEYS and with_legacy({})["race_validations"] == 0
    assert Config().race_validations == 0  # measured: no gain at the default budget (README)
    # R >= V is no race (so a V lowered later keeps a valid R): only a negative R is refused
    cfg = build_config(overrides={"validations_per_candidate": 1, "race_validations": 2})
    assert cfg.race_validations == 2
    with pytest.raises(ConfigError) as err:
        build_config(overrides=parse_overrides(["race_validations=-1"]))
    assert "use 0 (no race) or R >= 1" in str(err.value) and "\n" not in str(err.value)


def _rows_by_batch(system):
    store, _ = stored(system)
    batches = defaultdict(list)
    for rec in store.candidate_rows():
        batches[(rec.task, rec.iteration, rec.batch)].append(rec)
    return batches


def test_an_evolved_system_races_and_a_baseline_never_does(tmp_path, two_task_system):
    tasks = "builtin:digits,builtin:glyph_digits"
    # the tiny config: generation batches of 3 candidates, V = 2
    assert main(tiny_args(tmp_path / "m", tasks, "race_validations=1")) == 0
    plain = _rows_by_batch(two_task_system)
    for key, recs in _rows_by_batch(tmp_path / "m").items():
        assert sorted(len(r.history) for r in recs) == [1, 1, 3 * 2 - 2]
        assert sum(r.images for r in recs) == sum(r.images for r in plain[key])
    args = tiny_args(tmp_path / "b", tasks, "race_validations=1", "--method", "freeze-bottom:1")
    assert main(args) == 0
    for recs in _rows_by_batch(tmp_path / "b").values():
        assert [len(r.history) for r in recs] == [4, 4, 4]  # every replica its whole budget
