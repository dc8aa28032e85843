"""bench/quality.py's machinery, without training: arguments, the plan, resume skipping, FLOPs
matching and the tables built from result files; one tiny engine run checks the FLOPs model."""

from __future__ import annotations

import json

import pytest
from tiny import bench_module


@pytest.fixture(scope="module")
def q():
    return bench_module("quality")


def test_method_names_become_config_overrides(q):
    assert q.method_overrides("munet@0.9") == {"method": "munet", "scale_factor": 0.9}
    assert q.method_overrides("munet-extended") == {"method": "munet", "search": "extended"}
    assert q.method_overrides("munet-paper") == {"method": "munet", "search": "paper"}
    assert q.method_overrides("lora:8") == {"method": "lora:8"}
    # NAME/N: a baseline's replicas (lora:8/1 is one run, as PEFT users train)
    assert q.method_overrides("lora:8/1") == {"method": "lora:8", "baseline_replicas": 1}
    assert q.method_overrides("finetune-all/2=seconds") == {
        "method": "finetune-all",
        "baseline_replicas": 2,
    }
    assert q.engine_method("lora:8/1=seconds") == "lora:8" and q.slug("lora:8/1") == "lora-8-r1"
    for bad in ("munet/1", "lora:8/0", "lora:8/x"):
        with pytest.raises(SystemExit):
            q.parse_args(["--methods", "munet", bad])


def test_defaults_and_argument_errors(q, tmp_path):
    a = q.parse_args(["--out", str(tmp_path)])
    assert a.methods == [
        "munet",
        "munet@0.9",
        "munet@0.7",
        "munet-no-autotune",
        "munet-paper",
        "finetune-all",
        "freeze-bottom:2",
        "adapters:16",
        "lora:8",
    ]
    assert (a.seeds, a.budgets, a.match) == (3, [0.5, 1.0, 2.0], "flops")
    assert q.parse_args(["--budgets", "1,3", "--match", "images"]).budgets == [1.0, 3.0]
    for bad in (["--budgets", "0,1"], ["--budgets", "x"], ["--match", "seconds"]):
        with pytest.raises(SystemExit):
            q.parse_args(bad)
    with pytest.raises(SystemExit):  # flops are matched to munet's cell
        q.parse_args(["--methods", "finetune-all"])
    # muNet variants alone match nothing, so they need no reference cell
    assert q.parse_args(["--methods", "munet@0.9", "munet-no-autotune"]).match == "flops"
    assert q.parse_args(["--methods", "finetune-all", "--match", "images"]).match == "images"


def test_plan_multiplies_task_iterations_and_puts_reference_cells_first(q, tmp_path):
    a = q.parse_args(
        ["--out", str(tmp_path), "--methods", "lora:8", "munet@0.9", "munet", "--seeds", "2"]
        + ["--tasks", "builtin:digits", "--budget", "task_iterations=4"]
    )
    cells = q.plan(a)
    assert len(cells) == 3 * 2 * 3
    assert [c.method for c in cells[:6]] == ["munet"] * 6
    c = next(c for c in cells if (c.budget, c.method, c.seed) == (0.5, "munet@0.9", 1))
    assert c.overrides == {
        "task_iterations": 2,
        "tasks": ["builtin:digits"],
        "method": "munet",
        "scale_factor": 0.9,
        "seed": 1,
    }
    assert c.directory == tmp_path / "b0.5" / "munet-s0.9" / "seed1"
    assert c.result_file == tmp_path / "b0.5" / "munet-s0.9" / "seed1.json"
    assert {x.overrides["task_iterations"] for x in cells} == {2, 4, 8}
    assert q.budget_overrides({}, 0.5)["task_iterations"] == 1  # the default 2, halved
    assert q.budget_overrides({"task_iterations": 1}, 0.25)["task_iterations"] == 1
    lora = next(x for x in cells if x.method == "lora:8")
    assert lora.is_baseline and not c.is_baseline and lora.directory.parent.name == "lora-8"


def test_budget_by_steps_multiplies_validations_per_candidate_and_marks_the_directory(q, tmp_path):
    a = q.parse_args(["--out", str(tmp_path), "--methods", "munet", "--budget-by", "steps"])
    cells = q.plan(a)
    assert {c.overrides["validations_per_candidate"] for c in cells} == {4, 8, 16}  # V = 8
    assert all("task_iterations" not in c.overrides for c in cells)  # the candidate count stays
    assert q.budget_overrides({"validations_per_candidate": 3}, 0.25, "steps") == {
        "validations_per_candidate": 1
    }
    # a directory keeps its budget rule; one written before the rule existed reads "iterations"
    q.check_out(tmp_path, "flops", {}, "steps")
    q.check_out(tmp_path, "flops", {}, "steps")
    with pytest.raises(SystemExit):
        q.check_out(tmp_path, "flops", {}, "iterations")
    q.check_out(tmp_path / "old", "flops", {})
    assert "budget_by" not in json.loads((tmp_path / "old" / "bench.json").read_text())
    with pytest.raises(SystemExit):
        q.check_out(tmp_path / "old", "flops", {}, "steps")


def fake_result(cell, acc, params, flops=2e12, per_task=None):
    return {
        "budget": cell.budget,
        "method": cell.method,
        "seed": cell.seed,
        "baseline_budget": 1.0,
        "task_iterations": 2,
        "overrides": cell.overrides,
        "acc": acc,
        "val": acc - 0.01,
        "params": params,
        "images": 1000,
        "flops": flops,
        "train_s": 10.0,
        "wall_s": 12.0,
        "per_task": per_task or {"a": acc, "b": acc},
    }


def write(cell, result):
    cell.result_file.parent.mkdir(parents=True, exist_ok=True)
    cell.result_file.write_text(json.dumps(result))


def test_finished_cells_are_skipped_and_a_bench_dir_keeps_its_match(q, tmp_path, monkeypatch):
    a = q.parse_args(["--out", str(tmp_path), "--methods", "munet", "finetune-all", "--seeds", "2"])
    cells = q.plan(a)
    done = [c for c in cells if c.seed == 0]
    for c in done:
        write(c, fake_result(c, 0.8, 1e6))
    assert q.pending(cells) == [c for c in cells if c.seed == 1]
    ran = []
    monkeypatch.setattr(q, "execute", lambda c: ran.append(c) or fake_result(c, 0.8, 1e6))
    q.run_cells(cells, "images", 1)
    assert [(c.budget, c.method, c.seed) for c in ran] == [
        (b, m, 1) for m in ("munet", "finetune-all") for b in (0.5, 1.0, 2.0)
    ]
    q.check_out(tmp_path, "flops", {"tasks": ["x"]})
    q.check_out(tmp_path, "flops", {"tasks": ["x"]})  # the same: fine
    with pytest.raises(SystemExit, match="another --out"):
        q.check_out(tmp_path, "images", {"tasks": ["x"]})


def test_flops_matching_arithmetic(q, tmp_path, monkeypatch):
    shape = q.TaskShape("a", 10, interval=20, val_images=640)
    # 4 replicas x 16 intervals x (20 batches x 64 images x 30 + 640 x 10)
    assert q.baseline_flops(30, 10, 4, 16, shape, 64) == 4 * 16 * (20 * 64 * 30 + 640 * 10)
    assert q.flops_scale(3e12, 2e12) == 1.5
    with pytest.raises(ValueError):
        q.flops_scale(1e12, 0)
    a = q.parse_args(["--out", str(tmp_path), "--methods", "munet", "adapters:16", "--seeds", "1"])
    cells = [c for c in q.plan(a) if c.budget == 1.0]
    ref, base = cells
    with pytest.raises(SystemExit, match="needs"):
        q.matched(base, "flops")
    write(ref, fake_result(ref, 0.8, 1e6, flops=3e12))
    monkeypatch.setattr(q, "unit_flops", lambda m, o: 4e12)
    m = q.matched(base, "flops")
    assert m.overrides == {**base.overrides, "baseline_budget": 0.75}
    assert q.matched(base, "images") is base and q.matched(ref, "flops") is ref


def test_tables_from_result_files(q, tmp_path):
    a = q.parse_args(
        ["--out", str(tmp_path), "--methods", "munet", "lora:8", "--budgets", "1", "--seeds", "2"]
    )
    cells = q.plan(a)
    accs = {("munet", 0): 0.80, ("munet", 1): 0.84, ("lora:8", 0): 0.70, ("lora:8", 1): 0.70}
    for c in cells:
        acc = accs[(c.method, c.seed)]
        write(c, fake_result(c, acc, 5e5 if c.method == "munet" else 7e5))
    results = q.load_results(cells)
    rows = q.aggregate(results)
    assert [(r["budget"], r["method"], r["seeds"]) for r in rows] == [
        (1.0, "munet", 2),
        (1.0, "lora:8", 2),
    ]
    assert rows[0]["acc"] == pytest.approx((0.82, 0.0282842712), rel=1e-6)
    assert rows[1]["acc"] == (pytest.approx(0.70), 0.0)
    assert rows[0]["tflops"] == 2.0 and rows[0]["params"] == (5e5, 0.0)
    md = q.markdown(rows)
    assert "### Budget × 1" in md
    assert "| munet | 2 | 0.8200 ± 0.0283 | 0.8100 | 500,000 | 1,000 | 2 | 1 | 10 | 12 |" in md
    assert "| lora:8 | 0.7000 ± 0.0000 | 0.7000 ± 0.0000 |" in md
    csv_text = q.write_csv(results, tmp_path / "results.csv").read_text().splitlines()
    assert csv_text[0].startswith("budget,method,seed,acc") and len(csv_text) == 5
    for png in (
        q.sweep_png(rows, tmp_path / "sweep.png"),
        q.pareto_png(rows, tmp_path / "pareto.png", 1.0),
    ):
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_unit_flops_equal_what_the_trainer_counts_for_a_baseline(q, tmp_path):
    """The FLOPs model behind --match flops predicts a real tiny run's count exactly."""
    from munet.runner import evolve_system

    overrides = {
        "root": "builtin:vit_micro",
        "tasks": ["builtin:digits"],
        "method": "freeze-bottom:1",
        "task_iterations": 1,
        "candidates_per_iteration": 2,
        "generation_batch_size": 2,
        "validations_per_candidate": 1,
        "validation_interval_cap": 3,
        "validation_batches": 2,
        "batch_size": 16,
        "threads": 1,
        "device": "cpu",
    }
    evolve_system(tmp_path / "s", None, overrides, log=lambda _: None, show_progress=False)
    from munet.report.summary import load_summary

    measured = load_summary(tmp_path / "s").flops
    assert measured > 0
    assert q.unit_flops("freeze-bottom:1", overrides) == pytest.approx(measured, rel=1e-12)


def test_tables_only_runs_nothing_and_reports_the_seeds_each_row_has(q, tmp_path, monkeypatch):
    argv = ["--out", str(tmp_path), "--methods", "munet", "lora:8", "--budgets", "1,2"]
    argv += ["--seeds", "2", "--tables-only"]
    monkeypatch.setattr(q, "execute", lambda c: pytest.fail(f"ran {c}"))
    with pytest.raises(SystemExit, match="no finished cell"):
        q.main(argv)
    for c in q.plan(q.parse_args(argv)):
        if c.budget == 1.0 or c.seed == 0:  # budget 2 has seed 0 only
            write(c, fake_result(c, 0.8 + 0.01 * c.seed, 5e5))
    assert q.main(argv) == 0
    md = (tmp_path / "quality.md").read_text()
    assert "| munet | 2 | 0.8050 ± 0.0071 |" in md
    b2 = md.split("### Budget × 2")[1]
    assert "| munet | 1 | 0.8000 ± 0.0000 |" in b2 and "| lora:8 | 1 |" in b2


def test_a_baseline_matched_by_wall_seconds_is_calibrated_by_its_own_cell(q, tmp_path, monkeypatch):
    assert q.method_overrides("lora:8=seconds") == {"method": "lora:8"}
    assert q.slug("lora:8=seconds") == "lora-8-by-seconds"
    with pytest.raises(SystemExit):  # muNet is the reference, never matched
        q.parse_args(["--methods", "munet", "munet@0.9=seconds"])
    with pytest.raises(SystemExit):
        q.parse_args(["--match", "images", "--methods", "lora:8=seconds"])
    a = q.parse_args(
        ["--out", str(tmp_path), "--methods", "munet", "lora:8=seconds", "lora:8"]
        + ["--budgets", "1", "--seeds", "1", "--match", "images"]
    )
    ref, by_seconds, lora = q.plan(a)
    assert by_seconds.method == "lora:8=seconds" and by_seconds.directory.name == "seed0"
    assert by_seconds.directory.parent.name == "lora-8-by-seconds"
    with pytest.raises(SystemExit, match="wall seconds: it needs"):
        q.matched(by_seconds, "images")
    write(ref, {**fake_result(ref, 0.8, 1e6), "wall_s": 300.0})
    write(lora, {**fake_result(lora, 0.8, 1e6), "baseline_budget": 0.8, "wall_s": 200.0})
    assert q.matched(by_seconds, "images").overrides["baseline_budget"] == pytest.approx(1.2)
    assert q.matched(lora, "images") is lora  # the calibration keeps the directory's rule

    for c in (ref, lora):  # run order: reference, the rest, then the seconds-matched cells
        c.result_file.unlink()
    ran = []

    def fake_execute(c):
        ran.append(c.method)
        res = {**fake_result(c, 0.8, 1e6), "wall_s": 100.0, "baseline_budget": 1.0}
        write(c, res)
        return res

    monkeypatch.setattr(q, "execute", fake_execute)
    q.run_cells([by_seconds, lora, ref], "images", 1)
    assert ran == ["munet", "lora:8", "lora:8=seconds"]
