"""The candidate record's JSON is the journal's on-disk format."""

from __future__ import annotations

from munet.system.record import ASYNC_KEY, CandidateRecord

JOURNALED = {
    "task": "digits",
    "iteration": 1,
    "batch": 0,
    "candidate": 2,
    "path_id": 9,
    "parent_id": 4,
    "parent_task": "digits",
    "seed_phase": False,
    "mutations": ["ds_lr 0.1 -> 0.2"],
    "hparams": {"num_layers": 2},
    "component_ids": [1, 2, 10],
    "trainable_ids": [10],
    "quality": 0.5,
    "history": [0.25, 0.5],
    "seconds": 1.25,
    "images": 64,
    "flops": 1e9,
    "status": "ok",
    "accounted_params": 123.5,
    "baseline": 0.4,
    "score": 0.45,
    "accepted": True,
}


def test_json_round_trips_exactly():
    rec = CandidateRecord.from_json(JOURNALED)
    assert rec.to_json() == JOURNALED and list(rec.to_json()) == list(JOURNALED)
    agent = CandidateRecord.from_json({**JOURNALED, ASYNC_KEY: True})
    assert agent.agent and agent.to_json() == {**JOURNALED, ASYNC_KEY: True}


def test_hits_and_margin_are_journaled_only_with_a_paired_test():
    from munet.system.noise import HITS_KEY

    assert HITS_KEY not in CandidateRecord.from_json(JOURNALED).to_json()  # spec mode: as before
    paired = {**JOURNALED, HITS_KEY: "3:a0", "margin": 0.0125}
    rec = CandidateRecord.from_json(paired)
    assert (rec.hits, rec.margin) == ("3:a0", 0.0125) and rec.to_json() == paired


def test_records_of_older_systems_load_with_defaults():
    old = {k: v for k, v in JOURNALED.items() if k not in ("flops", "trainable_ids", "baseline")}
    rec = CandidateRecord.from_json({**old, "blobs": {}})
    assert (rec.flops, rec.trainable_ids, rec.baseline, rec.agent) == (None, [], None, False)


def test_a_diverged_replay_is_a_one_line_store_error():
    from dataclasses import replace

    import pytest

    from munet.errors import StoreError
    from munet.system.evolve import _check_replay

    old = CandidateRecord.from_json(JOURNALED)
    _check_replay([old], [replace(old, quality=None)])  # outcomes are not compared
    with pytest.raises(StoreError, match="diverged at task digits iteration 1 candidate 2") as e:
        _check_replay([old], [replace(old, component_ids=[1, 2, 11])])
    assert "\n" not in str(e.value) and "component_ids=[1, 2, 10]" in str(e.value)
