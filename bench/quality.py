"""Quality benchmark: muNet against the baselines at matched compute, over a budget sweep.

A *cell* is one (budget, method, seed): one system evolved by the engine (``munet evolve
--method``), or for ``lora:R`` the LoRA baseline through Hugging Face PEFT
(:mod:`munet.train.peft_lora`) on every task. A budget ``b`` multiplies muNet's task iterations
(the config's, 2 by default: ``--budgets 0.5,1,2`` runs 1, 2 and 4 task iterations per task),
or with ``--budget-by steps`` its validations per candidate V (8 by default: 4, 8 and 16, so
each candidate trains V × I steps and the candidate count stays).
Baselines are matched to muNet (the ``munet`` cell of the same budget and seed):

* ``--match images``: the training images muNet's budget trains (spec §7.4, the paper's rule);
* ``--match flops``: the training + validation FLOPs muNet's cell spent (munet runs first; a
  baseline's ``baseline_budget`` = muNet's FLOPs ÷ the baseline's FLOPs at equal images);
* a baseline method written ``NAME=seconds`` (e.g. ``lora:8=seconds``) is matched by **wall
  seconds** instead: it runs after ``NAME``'s own cell of the same budget and seed (matched by
  the directory's rule), which calibrates it, at ``baseline_budget`` = NAME's budget × muNet's
  wall seconds ÷ NAME's wall seconds (wall time taken as proportional to the budget). Its row
  shows the wall seconds it really took: timings on a shared or noisy machine match loosely.

Every finished cell writes ``OUT/b<b>/<method>/seed<k>.json``; a rerun skips finished cells and
resumes unfinished systems (and LoRA tasks), so a killed run loses at most one candidate batch.
``OUT/results.csv`` has every cell; ``OUT/quality.md`` a table per budget (mean ± std over
seeds); the sweep plot (test accuracy against budget and against FLOPs, per method) and the
Pareto plot (accuracy against parameters per task, at budget 1) go to ``--img-dir``.

    .venv/bin/python bench/quality.py --img-dir docs/img         # full: 6 tasks, 3 seeds
    .venv/bin/python bench/quality.py --quick --budgets 1        # the reduced run
    .venv/bin/python bench/quality.py --tasks builtin:digits --seeds 1 --budgets 1 \\
        --budget task_iterations=1 candidates_per_iteration=4

A method ``NAME@S`` runs method NAME with scale factor S (e.g. ``munet@0.9``);
``munet`` runs the default search (``search: extended``: low-rank components and AdamW, a task's
path from the root starting from PEFT's LoRA recipe); ``munet-paper`` the paper's search space
(``search: paper``); ``munet-extended`` names the extended search explicitly.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

DEFAULT_METHODS = [
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
#: the cell every baseline of the same budget and seed is matched to
REFERENCE = "munet"
MATCHES = ("images", "flops")
QUICK_TASKS = "builtin:digits,builtin:glyph_digits,builtin:glyph_greek"
QUICK_BUDGET = [
    "task_iterations=2",
    "candidates_per_iteration=4",
    "generation_batch_size=2",
    "validations_per_candidate=2",
    "validation_interval_cap=25",
]


@dataclass(frozen=True)
class Cell:
    """One (budget, method, seed): where it lives and the config it runs with."""

    budget: float
    method: str  # as given, e.g. "munet@0.9"
    seed: int
    out: Path
    overrides: dict[str, Any]

    @property
    def directory(self) -> Path:
        """The system (or LoRA task files) of this cell."""
        return self.out / budget_name(self.budget) / slug(self.method) / f"seed{self.seed}"

    @property
    def result_file(self) -> Path:
        return self.directory.with_name(f"seed{self.seed}.json")

    @property
    def wall_file(self) -> Path:
        """Wall seconds spent on this cell, summed over (resumed) bench invocations."""
        return self.directory.with_name(f"wall-seed{self.seed}.json")

    @property
    def is_reference(self) -> bool:
        return self.method == REFERENCE

    @property
    def is_baseline(self) -> bool:
        return is_baseline(self.method)


# ---- planning ---------------------------------------------------------------------------------
def is_baseline(method: str) -> bool:
    """A method other than muNet and its variants (munet@S, munet-no-autotune)."""
    return not method.partition("@")[0].startswith("munet")


def budget_name(budget: float) -> str:
    return f"b{budget:g}"


def slug(method: str) -> str:
    return method.replace(":", "-").replace("@", "-s").replace("=", "-by-").replace("/", "-r")


#: ``NAME=seconds``: baseline NAME matched by wall seconds (calibrated by NAME's own cell)
BY_SECONDS = "=seconds"


def split_match(method: str) -> tuple[str, bool]:
    """``lora:8=seconds`` → ("lora:8", True); ``lora:8`` → ("lora:8", False)."""
    if method.endswith(BY_SECONDS):
        return method[: -len(BY_SECONDS)], True
    return method, False


#: ``NAME/N``: baseline NAME trained as N replicas (``baseline_replicas``; ``lora:8/1`` is one
#: run of all the images, as PEFT users train) instead of the engine's rule
REPLICAS = "/"


def split_replicas(method: str) -> tuple[str, str]:
    """``lora:8/1=seconds`` → ("lora:8", "1"); ``lora:8`` → ("lora:8", "")."""
    name, _, replicas = split_match(method)[0].partition(REPLICAS)
    return name, replicas


def engine_method(method: str) -> str:
    """The method the engine runs: ``lora:8/1=seconds`` → ``lora:8``."""
    return split_replicas(method)[0]


def parse_budgets(text: str) -> list[float]:
    """``0.5,1,2`` → [0.5, 1.0, 2.0]; each must be > 0."""
    try:
        out = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        out = []
    if not out or any(not b > 0 for b in out):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive numbers, e.g. 0.5,1,2")
    return out


#: bench-only method names: muNet with another search space
SEARCH_METHODS = {"munet-extended": ("munet", "extended"), "munet-paper": ("munet", "paper")}


def method_overrides(method: str) -> dict[str, Any]:
    base, replicas = split_replicas(method)
    name, _, scale = base.partition("@")
    out: dict[str, Any] = {"method": name}
    if replicas:
        out["baseline_replicas"] = int(replicas)
    if name in SEARCH_METHODS:
        out["method"], out["search"] = SEARCH_METHODS[name]
    if scale:
        out["scale_factor"] = float(scale)
    return out


#: what a budget multiplies: muNet's task iterations (more candidates, each as long) or the
#: validations per candidate V (as many candidates, each training V × I steps)
BUDGET_BY = {"iterations": "task_iterations", "steps": "validations_per_candidate"}


def budget_overrides(
    base: Mapping[str, Any], budget: float, by: str = "iterations"
) -> dict[str, Any]:
    """``base`` with muNet's task iterations (``by="iterations"``) or validations per candidate
    (``by="steps"``) multiplied by ``budget`` (rounded, at least 1)."""
    from munet.config import Config

    key = BUDGET_BY[by]
    value = int(base.get(key, getattr(Config(), key)))
    return {**base, key: max(1, round(value * budget))}


def base_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config every cell shares: ``--budget`` overrides and ``--tasks``."""
    from munet.config import parse_overrides

    base = parse_overrides(args.budget)
    if args.tasks:
        base["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
    return base


def plan(args: argparse.Namespace) -> list[Cell]:
    """Every cell, reference cells (munet) first so that baselines can be matched to them."""
    base = base_overrides(args)
    cells = [
        Cell(
            b,
            m,
            seed,
            args.out,
            {**budget_overrides(base, b, args.budget_by), **method_overrides(m), "seed": seed},
        )
        for b in args.budgets
        for seed in range(args.seeds)
        for m in args.methods
    ]
    return sorted(cells, key=lambda c: not c.is_reference)


def pending(cells: Sequence[Cell]) -> list[Cell]:
    """The cells without a result file (a rerun skips the others)."""
    return [c for c in cells if not c.result_file.exists()]


def check_out(
    out: Path, match: str, base: Mapping[str, Any], budget_by: str = "iterations"
) -> None:
    """A bench directory holds one match rule, one base config and one budget rule: record them
    on first use, refuse a rerun with others (budgets, seeds and methods may be added)."""
    want: dict[str, Any] = {"match": match, "overrides": dict(base)}
    if budget_by != "iterations":  # directories written before --budget-by existed stay valid
        want["budget_by"] = budget_by
    file = out / "bench.json"
    if file.exists():
        have = json.loads(file.read_text())
        if have != json.loads(json.dumps(want)):
            raise SystemExit(
                f"{out} holds a bench run with {have}; this one is {want}: use another --out"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps(want, indent=1))


# ---- matching by FLOPs ------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskShape:
    """What a task's training cost depends on besides the model."""

    name: str
    num_classes: int
    interval: int  # training batches per validation interval
    val_images: int  # images per validation
    rescore_images: int = 0  # score_split=full: each replica's best snapshot scored once on these


def baseline_flops(
    train_per_image: float,
    eval_per_image: float,
    replicas: int,
    validations: int,
    shape: TaskShape,
    batch_size: int,
) -> float:
    """FLOPs the trainer counts for a baseline on one task: every replica trains
    ``validations × interval`` batches, validates ``validations`` times and (``score_split:
    full``) scores its best snapshot once on the whole validation split."""
    per_interval = shape.interval * batch_size * train_per_image + shape.val_images * eval_per_image
    return replicas * (validations * per_interval + shape.rescore_images * eval_per_image)


def flops_scale(reference_flops: float, unit_flops: float) -> float:
    """``baseline_budget`` that makes a baseline spend ``reference_flops``, given its FLOPs at
    ``baseline_budget = 1`` (the images match)."""
    if unit_flops <= 0 or reference_flops <= 0:
        raise ValueError("FLOPs must be positive to match them")
    return reference_flops / unit_flops


def unit_flops(method: str, overrides: Mapping[str, Any]) -> float:
    """A baseline's FLOPs over every task at ``baseline_budget = 1``, from the trainer's count
    (:func:`munet.system.baselines.image_flops`; LoRA adds its low-rank products)."""
    from munet.config import build_config
    from munet.data.load import load_tasks
    from munet.data.pipeline import val_split, val_subset
    from munet.model.root import load_root
    from munet.runner import fit_image_size
    from munet.system.baselines import (
        baseline_hparams,
        image_flops,
        matched_budget,
        parse_method,
        trainable_names,
    )
    from munet.train.peft_lora import is_lora, lora_image_flops, parse_lora
    from munet.train.trainer import TrainSettings

    cfg = build_config(None, {**overrides, "method": "finetune-all"})
    root = load_root(cfg.root, log=lambda _: None, weights=cfg.root_weights)
    fit_image_size(cfg, root.arch.patch_size)
    budget = matched_budget(
        cfg.task_iterations,
        cfg.candidates_per_iteration,
        cfg.generation_batch_size,
        cfg.validations_per_candidate,
        cfg.baseline_replicas,
    )
    ts = TrainSettings(batch_size=cfg.batch_size, interval_cap=cfg.validation_interval_cap)
    total = 0.0
    for name, data in load_tasks(cfg.tasks).items():
        hp = {**cfg.default_hparams(), "num_layers": root.arch.depth, "adapter_layers": []}
        hp["num_classes"] = data.num_classes
        if is_lora(method):
            f = lora_image_flops(root.arch, hp, parse_lora(method).rank)
        else:
            m = parse_method(method.partition("@")[0])
            hp = baseline_hparams(m, hp)
            f = image_flops(root.arch, hp, trainable_names(m, root.arch.component_names(hp)))
        _, vy, _ = val_subset(data, cfg.batch_size, cfg.validation_batches)
        rescore = 0
        if cfg.score_split == "full" and not is_lora(method):  # the engine's trainer rescores
            rescore = len(val_split(data, cfg.batch_size)[1])
        shape = TaskShape(name, data.num_classes, ts.interval(len(data.train_y)), len(vy), rescore)
        total += baseline_flops(
            f.train, f.eval, budget.replicas, budget.validations, shape, cfg.batch_size
        )
    return total


def with_budget(cell: Cell, scale: float) -> Cell:
    overrides = {**cell.overrides, "baseline_budget": round(scale, 6)}
    return Cell(cell.budget, cell.method, cell.seed, cell.out, overrides)


def seconds_matched(cell: Cell) -> Cell:
    """A ``NAME=seconds`` baseline at the budget that makes it take muNet's wall seconds, from
    NAME's own cell (same budget and seed): its budget × muNet's wall s ÷ its wall s."""
    ref = Cell(cell.budget, REFERENCE, cell.seed, cell.out, {})
    calibration = Cell(cell.budget, split_match(cell.method)[0], cell.seed, cell.out, {})
    for need in (ref, calibration):
        if not need.result_file.exists():
            raise SystemExit(
                f"{cell.method} is matched by wall seconds: it needs {need.result_file} "
                f"(list {need.method} in --methods too)"
            )
    wall = json.loads(ref.result_file.read_text())["wall_s"]
    cal = json.loads(calibration.result_file.read_text())
    if not (wall > 0 and cal["wall_s"] > 0):
        raise SystemExit(f"{cell.method}: wall seconds must be positive to match them")
    return with_budget(cell, cal["baseline_budget"] * wall / cal["wall_s"])


def matched(cell: Cell, match: str) -> Cell:
    """``cell`` with its ``baseline_budget`` set for the match (baselines under --match flops,
    ``NAME=seconds`` baselines by wall seconds; every other cell is returned as is)."""
    if cell.is_baseline and split_match(cell.method)[1]:
        return seconds_matched(cell)
    if match != "flops" or not cell.is_baseline:
        return cell
    ref = Cell(cell.budget, REFERENCE, cell.seed, cell.out, {})
    if not ref.result_file.exists():
        raise SystemExit(
            f"--match flops: {cell.method} needs {ref.result_file} (run {REFERENCE} with it)"
        )
    reference = json.loads(ref.result_file.read_text())["flops"]
    return with_budget(
        cell, flops_scale(reference, unit_flops(engine_method(cell.method), cell.overrides))
    )


# ---- running ----------------------------------------------------------------------------------
def execute(cell: Cell) -> dict[str, Any]:
    """Run (or resume) one cell and write its result file; returns the result."""
    from munet.runner import run_lora
    from munet.train.peft_lora import is_lora, parse_lora

    t0 = time.time()
    method = engine_method(cell.method)
    if is_lora(method):
        results = run_lora(cell.directory, parse_lora(method), cell.overrides)
        trained = True
    else:
        from munet.runner import evolve_system

        outcome = evolve_system(
            cell.directory, None, cell.overrides, log=lambda _: None, show_progress=False
        )
        trained = bool(outcome.trained)
        results = None
    seconds = time.time() - t0
    wall = json.loads(cell.wall_file.read_text())["seconds"] if cell.wall_file.exists() else 0.0
    if trained:  # a rerun that only reopens a finished system costs nothing
        wall += seconds
        cell.wall_file.write_text(json.dumps({"seconds": wall}))
    result = lora_result(cell, results) if results is not None else system_result(cell)
    result["wall_s"] = wall
    cell.result_file.write_text(json.dumps(result, indent=1))
    return result


def cell_header(cell: Cell) -> dict[str, Any]:
    return {
        "budget": cell.budget,
        "method": cell.method,
        "seed": cell.seed,
        "baseline_budget": float(cell.overrides.get("baseline_budget", 1.0)),
        "task_iterations": cell.overrides.get("task_iterations"),
        "overrides": cell.overrides,
    }


def system_result(cell: Cell) -> dict[str, Any]:
    """A stored system reduced to the bench's numbers."""
    from munet.report.summary import load_summary

    s = load_summary(cell.directory)
    return {
        **cell_header(cell),
        "acc": s.mean_test_accuracy or 0.0,
        "val": s.mean_val_accuracy or 0.0,
        "params": s.params_per_task,
        "images": s.images,
        "flops": s.flops,
        "train_s": s.seconds,
        "per_task": {r.task: r.test_accuracy or 0.0 for r in s.rows},
    }


def lora_result(cell: Cell, results: Sequence[Any]) -> dict[str, Any]:
    """The LoRA baseline's task results reduced to the bench's numbers (same accounting)."""
    n = max(1, len(results))
    return {
        **cell_header(cell),
        "acc": sum(r.test_accuracy for r in results) / n,
        "val": sum(r.val_accuracy for r in results) / n,
        "params": sum(r.accounted_params for r in results) / n,
        "images": sum(r.images for r in results),
        "flops": sum(r.flops for r in results),
        "train_s": sum(r.seconds for r in results),
        "per_task": {r.task: r.test_accuracy for r in results},
    }


def run_cells(cells: Sequence[Cell], match: str, jobs: int) -> None:
    """Reference cells first (all of them, in parallel up to ``jobs``), then the rest, then the
    ``NAME=seconds`` baselines (their calibration is NAME's finished cell)."""
    by_seconds = [c for c in cells if c.is_baseline and split_match(c.method)[1]]
    for phase in (
        [c for c in cells if c.is_reference],
        [c for c in cells if not c.is_reference and c not in by_seconds],
        by_seconds,
    ):
        todo = [matched(c, match) for c in pending(phase)]
        if jobs > 1 and len(todo) > 1:
            with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
                for cell, res in zip(todo, pool.map(execute, todo), strict=True):
                    report_cell(cell, res)
        else:
            for cell in todo:
                report_cell(cell, execute(cell))


def report_cell(cell: Cell, res: Mapping[str, Any]) -> None:
    print(
        f"{cell.directory}: test acc {res['acc']:.4f}, {res['params']:,.0f} params/task, "
        f"{res['flops'] / 1e12:.3g} TFLOPs, {res['wall_s']:.0f} s",
        flush=True,
    )


# ---- tables and plots -------------------------------------------------------------------------
def load_results(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    return [json.loads(c.result_file.read_text()) for c in cells if c.result_file.exists()]


def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def aggregate(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (budget, method) over its seeds, in the order first seen."""
    groups: dict[tuple[float, str], list[Mapping[str, Any]]] = {}
    for r in results:
        groups.setdefault((float(r["budget"]), r["method"]), []).append(r)
    rows = []
    for (budget, method), rs in groups.items():
        tasks = list(rs[0]["per_task"])
        rows.append(
            {
                "budget": budget,
                "method": method,
                "seeds": len(rs),
                "acc": mean_std([r["acc"] for r in rs]),
                "val": mean_std([r["val"] for r in rs]),
                "params": mean_std([r["params"] for r in rs]),
                "images": statistics.fmean(r["images"] for r in rs),
                "tflops": statistics.fmean(r["flops"] / 1e12 for r in rs),
                "baseline_budget": statistics.fmean(r["baseline_budget"] for r in rs),
                "train_s": statistics.fmean(r["train_s"] for r in rs),
                "wall_s": statistics.fmean(r["wall_s"] for r in rs),
                "per_task": {t: mean_std([r["per_task"].get(t, 0.0) for r in rs]) for t in tasks},
            }
        )
    return rows


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A table per budget (and the per-task accuracies under it)."""
    parts = []
    for budget in dict.fromkeys(r["budget"] for r in rows):
        mine = [r for r in rows if r["budget"] == budget]
        parts += [
            f"### Budget × {budget:g}",
            "",
            "| method | seeds | test acc (mean ± std) | val acc | params per task | "
            "train images / system | train TFLOPs / system | baseline budget | "
            "train s / system | wall s / system |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in mine:
            parts.append(
                f"| {r['method']} | {r['seeds']} | {r['acc'][0]:.4f} ± {r['acc'][1]:.4f} | "
                f"{r['val'][0]:.4f} | {r['params'][0]:,.0f} | {r['images']:,.0f} | "
                f"{r['tflops']:.3g} | {r['baseline_budget']:.3g} | {r['train_s']:.0f} | "
                f"{r['wall_s']:.0f} |"
            )
        tasks = list(mine[0]["per_task"])
        parts += ["", "Per task, test accuracy (mean ± std over seeds):", ""]
        parts.append("| method | " + " | ".join(tasks) + " |")
        parts.append("| --- |" + " ---: |" * len(tasks))
        for r in mine:
            cells = [f"{r['per_task'][t][0]:.4f} ± {r['per_task'][t][1]:.4f}" for t in tasks]
            parts.append(f"| {r['method']} | " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def write_csv(results: Sequence[Mapping[str, Any]], path: Path) -> Path:
    cols = ["budget", "method", "seed", "acc", "val", "params", "images", "flops"]
    cols += ["baseline_budget", "task_iterations", "train_s", "wall_s"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(results)
    return path


def sweep_png(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Test accuracy (mean ± std over seeds) against the budget and against training FLOPs."""
    from munet.report import figure

    plt = figure.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for method, colour in zip(methods, figure.colours(len(methods)), strict=True):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["budget"])
        acc = [r["acc"][0] for r in mine]
        err = [r["acc"][1] for r in mine]
        style = {"color": colour, "marker": "o", "capsize": 3, "label": method}
        left.errorbar([r["budget"] for r in mine], acc, yerr=err, **style)
        right.errorbar([r["tflops"] for r in mine], acc, yerr=err, **style)
    budgets = sorted({r["budget"] for r in rows})
    left.set_xscale("log", base=2)
    left.set_xticks(budgets, [f"{b:g}" for b in budgets])
    left.minorticks_off()
    left.set_xlabel("budget (× muNet's default task iterations)")
    figure.log_x_axis(right, [r["tflops"] for r in rows])
    right.set_xlabel("training + validation TFLOPs per system")
    left.set_ylabel("mean test accuracy over tasks")
    left.set_title("accuracy vs budget")
    right.set_title("accuracy vs compute")
    right.legend(loc="lower right")
    return figure.save(fig, path)


def pareto_png(rows: Sequence[Mapping[str, Any]], path: Path, budget: float) -> Path:
    from munet.report.plot_tradeoff import TradeoffPoint, plot_tradeoff

    points = [
        TradeoffPoint(
            f"{r['method']} (n={r['seeds']})",
            r["method"],
            r["params"][0],
            r["acc"][0],
            accuracy_std=r["acc"][1],
            params_std=r["params"][1],
        )
        for r in rows
        if r["budget"] == budget
    ]
    return plot_tradeoff(
        points,
        path,
        title=f"muNet vs baselines, budget × {budget:g} (mean ± std over seeds)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", help="comma-separated task specs (default: the config's six)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (0..N-1)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="methods, NAME[@S]")
    p.add_argument(
        "--budgets",
        type=parse_budgets,
        default=[0.5, 1.0, 2.0],
        help="budget multipliers (of muNet's task iterations, see --budget-by), e.g. 0.5,1,2",
    )
    p.add_argument(
        "--budget-by",
        choices=sorted(BUDGET_BY),
        default="iterations",
        help="what a budget multiplies: task iterations (more candidates) or steps (the "
        "validations per candidate V: longer candidates)",
    )
    p.add_argument("--match", choices=MATCHES, default="flops", help="what baselines match")
    p.add_argument("--budget", nargs="*", default=[], metavar="key=value", help="config overrides")
    p.add_argument("--quick", action="store_true", help="the reduced run: 3 tasks, small budget")
    p.add_argument("--out", type=Path, default=Path("bench/out/quality"), help="cells + tables")
    p.add_argument("--img-dir", type=Path, help="where the PNGs go (default: --out)")
    p.add_argument("--jobs", type=int, default=1, help="cells run in parallel processes")
    p.add_argument(
        "--tables-only",
        action="store_true",
        help="run nothing: tables and plots from the cells already done (rows say their seeds)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks or QUICK_TASKS
        args.budget = QUICK_BUDGET + args.budget
    if args.seeds < 1:
        p.error("--seeds must be >= 1")
    if (
        args.match == "flops"
        and any(map(is_baseline, args.methods))
        and REFERENCE not in args.methods
    ):
        p.error(f"--match flops matches baselines to {REFERENCE}: list it in --methods")
    for m in args.methods:
        name, by_seconds = split_match(m)
        if by_seconds and (not is_baseline(name) or REFERENCE not in args.methods):
            p.error(f"{m}: only a baseline can be matched by wall seconds, to {REFERENCE}: list it")
        replicas = split_replicas(m)[1]
        if replicas and (not is_baseline(name) or not replicas.isdigit() or int(replicas) < 1):
            p.error(f"{m}: NAME/N sets a baseline's replicas: N >= 1, e.g. lora:8/1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check_out(args.out, args.match, base_overrides(args), args.budget_by)
    cells = plan(args)
    t0 = time.time()
    if not args.tables_only:
        run_cells(cells, args.match, args.jobs)
    results = load_results(cells)
    if not results:
        raise SystemExit(f"{args.out}: no finished cell among the planned ones")
    rows = aggregate(results)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.out / "results.csv")
    table = markdown(rows)
    (args.out / "quality.md").write_text(
        f"Command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}\n"
        f"Match: {args.match}\n\n{table}\n"
    )
    img = args.img_dir or args.out
    sweep = sweep_png(rows, img / "quality-sweep.png")
    middle = min(args.budgets, key=lambda b: abs(b - 1.0))
    pareto = pareto_png(rows, img / "quality-pareto.png", middle)
    print(table)
    print(
        f"total wall {time.time() - t0:.0f} s; table {args.out / 'quality.md'}; "
        f"plots {sweep}, {pareto}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
