"""The report's numbers against the stored system; lineage, component roles, Pareto front."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from tiny import pure_state, stored

from munet.report.plot_evolution import acceptance, lineage_hparams
from munet.report.plot_tradeoff import pareto_front
from munet.report.summary import (
    ADAPTER,
    INHERITED,
    OWN,
    ROOT,
    Role,
    SystemSummary,
    component_columns,
    component_roles,
    display_names,
    lineage,
    load_summary,
)
from munet.system.assemble import assemble_child
from munet.system.baselines import Method, assemble_baseline_child
from munet.system.record import CandidateRecord
from munet.system.score import accounted_params, private_params
from munet.system.state import NullOps


def csv_rows(d):
    return list(csv.DictReader(open(Path(d) / "candidates.csv")))


def test_leaderboard_numbers_equal_the_stored_system(two_task_system):
    s = load_summary(two_task_system)
    _, state = stored(two_task_system)
    rows = csv_rows(two_task_system)
    assert [r.task for r in s.rows] == ["digits", "glyph_digits"]
    per_task = defaultdict(list)
    for r in rows:
        per_task[r["task"]].append(r)
    for r in s.rows:
        path = state.retained(r.task)
        assert r.path_id == path.id
        assert r.test_accuracy == path.metrics["test_quality"]
        assert r.val_accuracy == path.metrics["quality"]
        assert r.accounted_params == accounted_params(path)
        assert r.private_params == private_params(path)
        assert r.candidates == len(per_task[r.task]) == 6  # 2 iterations × 3 candidates
        assert r.accepted == sum(x["accepted"] == "True" for x in per_task[r.task])
        assert r.images == sum(int(x["images"]) for x in per_task[r.task])
        assert r.seconds == pytest.approx(sum(float(x["seconds"]) for x in per_task[r.task]))
        assert r.flops == pytest.approx(sum(float(x["flops"]) for x in per_task[r.task]))
        assert r.flops > 0
    want_ppt = np.mean([accounted_params(state.retained(t)) for t in ("digits", "glyph_digits")])
    assert s.params_per_task == pytest.approx(want_ppt, rel=1e-12)
    assert s.mean_test_accuracy == pytest.approx(
        np.mean([state.retained(t).metrics["test_quality"] for t in state.population])
    )
    assert len(s.candidates) == len(rows) == 12
    assert s.images == sum(int(x["images"]) for x in rows)
    assert s.flops == pytest.approx(sum(float(x["flops"]) for x in rows))
    # tasks.csv carries each task's compute beside its retained path
    tasks_csv = {r["task"]: r for r in csv.DictReader(open(two_task_system / "tasks.csv"))}
    for r in s.rows:
        t = tasks_csv[r.task]
        assert int(t["candidates"]) == r.candidates and int(t["images"]) == r.images
        assert float(t["flops"]) == pytest.approx(r.flops)
        assert float(t["seconds"]) == pytest.approx(r.seconds, abs=1e-3)
    assert s.method == "munet" and s.label == "munet"


def test_lineage_walks_the_recorded_parents_from_the_root(two_task_system):
    s = load_summary(two_task_system)
    parent = {int(r["path_id"]): int(r["parent_id"]) for r in csv_rows(two_task_system)}
    task_of = {int(r["path_id"]): r["task"] for r in csv_rows(two_task_system)}
    for r in s.rows:
        assert r.lineage[0] == (0, "root") and r.lineage[-1] == (r.path_id, r.task)
        for (up, _), (down, task) in zip(r.lineage, r.lineage[1:], strict=False):
            assert parent[down] == up and task_of[down] == task
        assert r.lineage_tasks[0] == "root" and r.lineage_tasks[-1] == r.task
        assert r.lineage_text == " → ".join(r.lineage_tasks)
        assert r.transferred_from == [t for t in r.lineage_tasks if t not in ("root", r.task)]
        hps = lineage_hparams(s, r.task)
        assert (
            len(hps) == len(r.lineage)
            and hps[-1] == stored(two_task_system)[1].retained(r.task).hparams
        )
    records = [
        CandidateRecord(task, 0, 0, 0, pid, parent, "", False, [], {}, [], [])
        for pid, parent, task in [(5, 3, "b"), (3, 1, "a"), (1, 0, "a")]
    ]
    assert lineage(5, records) == [(0, "root"), (1, "a"), (3, "a"), (5, "b")]


def test_acceptance_counts_only_mutated_candidates(two_task_system):
    s = load_summary(two_task_system)
    rows = csv_rows(two_task_system)
    got = acceptance(s)
    for task, per_iter in got.items():
        for it, (k, n) in enumerate(per_iter):
            mine = [
                r
                for r in rows
                if r["task"] == task and int(r["iteration"]) == it and r["seed_phase"] == "False"
            ]
            assert (k, n) == (sum(r["accepted"] == "True" for r in mine), len(mine))


def test_component_roles_name_root_inherited_private_and_adapter():
    state, s = pure_state()
    records = []

    def keep(path):
        path.metrics["quality"] = 0.5
        records.append(
            {
                "task": path.task,
                "path_id": path.id,
                "parent_id": path.parent.id,
                "trainable_ids": [c.id for c in path.trainable_components()],
                "hparams": path.hparams,
            }
        )
        state.begin_iteration(path.task)
        state.accept(path)
        state.end_iteration(path.task, s)

    a, _ = assemble_baseline_child(state, "a", 3, {}, Method("freeze-bottom", 2), NullOps(), s)
    keep(a)
    b, _ = assemble_child(state, a, "b", 4, {}, False, np.random.default_rng(0), NullOps(), s)
    keep(b)
    c, _ = assemble_baseline_child(state, "c", 5, {}, Method("adapters", 8), NullOps(), s)
    keep(c)
    summary = SystemSummary("x", Path("x"), {}, "r", state, [], records)
    summary.creators = {cid: r["task"] for r in records for cid in r["trainable_ids"]}
    roles = component_roles(summary)
    assert roles["a"]["embedding"] == Role(ROOT, "root", 3)
    assert roles["a"]["encoderblock_2"] == Role(OWN, "clone", 2)
    assert roles["a"]["head"] == Role(OWN, "new", 1)
    assert roles["b"]["encoderblock_2"] == Role(INHERITED, "a", 2)
    assert roles["b"]["encoder_norm"] == Role(INHERITED, "a", 2)
    assert roles["b"]["encoderblock_1"] == Role(ROOT, "root", 3)
    assert roles["c"]["residual_adapter_0"] == Role(ADAPTER, "new", 1)
    assert roles["c"]["encoderblock_2"] == Role(ROOT, "root", 1)
    assert component_columns(state) == [
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


def test_pareto_front_keeps_only_undominated_points():
    pts = [(1.0, 0.5), (2.0, 0.6), (3.0, 0.55), (2.0, 0.4), (1.0, 0.5), (4.0, 0.9)]
    assert pareto_front(pts) == [0, 4, 1, 5]
    assert pareto_front([(5.0, 0.1)]) == [0]
    assert pareto_front([(1.0, 0.2), (1.0, 0.3)]) == [1]


def test_display_names_are_the_shortest_distinct_suffixes(tmp_path):
    a, b = tmp_path / "m1" / "seed0", tmp_path / "m2" / "seed0"
    assert display_names([a, b]) == ["m1/seed0", "m2/seed0"]
    assert display_names([tmp_path / "one", tmp_path / "two"]) == ["one", "two"]
