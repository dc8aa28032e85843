"""Quality benchmark: muNet against the baselines of spec §7.4 at matched compute.

Every (method, seed) pair is one system evolved by the same engine (``munet evolve --method``);
baselines get exactly the training images muNet's evolution of each task consumes. The table
gives, per method, the mean test accuracy over tasks (mean ± std over seeds), parameters per
task, training images and wall time; the PNG is accuracy vs parameters per task with the Pareto
front. Systems are stored under ``--out`` and resumed, so a rerun only trains what is missing.

    .venv/bin/python bench/quality.py                       # full: 6 tasks, 3 seeds, defaults
    .venv/bin/python bench/quality.py --quick               # the reduced run of RESULTS-quality
    .venv/bin/python bench/quality.py --tasks builtin:digits --seeds 2 \\
        --budget task_iterations=1 candidates_per_iteration=4

A method ``NAME@S`` runs method NAME with scale factor S (e.g. ``munet@0.5``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

DEFAULT_METHODS = ["munet", "munet@0.5", "finetune-all", "freeze-bottom:2", "adapters:16"]
QUICK_TASKS = "builtin:digits,builtin:glyph_digits,builtin:glyph_greek"
QUICK_BUDGET = [
    "task_iterations=2",
    "candidates_per_iteration=4",
    "generation_batch_size=2",
    "validations_per_candidate=2",
    "validation_interval_cap=25",
]


@dataclass(frozen=True)
class Run:
    method: str  # as given, e.g. "munet@0.5"
    seed: int
    directory: Path
    overrides: dict[str, Any]


def method_overrides(method: str) -> dict[str, Any]:
    name, _, scale = method.partition("@")
    out: dict[str, Any] = {"method": name}
    if scale:
        out["scale_factor"] = float(scale)
    return out


def slug(method: str) -> str:
    return method.replace(":", "-").replace("@", "-s")


def plan(args: argparse.Namespace) -> list[Run]:
    from munet.config import parse_overrides

    budget = parse_overrides(args.budget)
    runs = []
    for seed in range(args.seeds):
        for method in args.methods:
            overrides = {**budget, **method_overrides(method), "seed": seed}
            if args.tasks:
                overrides["tasks"] = [t.strip() for t in args.tasks.split(",") if t.strip()]
            runs.append(Run(method, seed, args.out / slug(method) / f"seed{seed}", overrides))
    return runs


def wall_file(run: Run) -> Path:
    """Wall seconds spent evolving a system, summed over (resumed) bench invocations."""
    return run.directory.parent / f"wall-{run.directory.name}.json"


def execute(run: Run) -> float:
    """Evolve one system (resuming if present); returns this call's wall seconds."""
    from munet.runner import evolve_system

    t0 = time.time()
    outcome = evolve_system(
        run.directory, None, run.overrides, log=lambda _: None, show_progress=False
    )
    seconds = time.time() - t0
    if outcome.trained:  # a rerun that only reopens a finished system costs nothing
        wall = wall_file(run)
        previous = json.loads(wall.read_text())["seconds"] if wall.exists() else 0.0
        wall.write_text(json.dumps({"seconds": previous + seconds}))
    return seconds


def mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def aggregate(runs: list[Run]) -> list[dict[str, Any]]:
    """Per method: accuracy, size and compute over its seeds."""
    from munet.report.summary import load_summary

    out = []
    for method in dict.fromkeys(r.method for r in runs):
        mine = [r for r in runs if r.method == method]
        sums = [load_summary(r.directory, f"{slug(method)}/seed{r.seed}") for r in mine]
        walls = []
        for r in mine:
            wall = wall_file(r)
            walls.append(json.loads(wall.read_text())["seconds"] if wall.exists() else 0.0)
        acc = mean_std([s.mean_test_accuracy or 0.0 for s in sums])
        tasks = [row.task for row in sums[0].rows]
        out.append(
            {
                "method": method,
                "seeds": len(sums),
                "acc": acc,
                "val": mean_std([s.mean_val_accuracy or 0.0 for s in sums]),
                "params": mean_std([s.params_per_task for s in sums]),
                "images": statistics.fmean(s.images for s in sums),
                "tflops": statistics.fmean(
                    sum(float(c.flops or 0.0) for c in s.candidates) / 1e12 for s in sums
                ),
                "train_s": statistics.fmean(s.seconds for s in sums),
                "wall_s": statistics.fmean(walls),
                "per_task": {
                    t: mean_std(
                        [next(x.test_accuracy for x in s.rows if x.task == t) or 0.0 for s in sums]
                    )
                    for t in tasks
                },
            }
        )
    return out


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | seeds | test acc (mean ± std) | val acc | params per task | "
        "train images / system | train TFLOPs / system | train s / system | wall s / system |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['seeds']} | {r['acc'][0]:.4f} ± {r['acc'][1]:.4f} | "
            f"{r['val'][0]:.4f} | {r['params'][0]:,.0f} | {r['images']:,.0f} | "
            f"{r['tflops']:.1f} | {r['train_s']:.0f} | {r['wall_s']:.0f} |"
        )
    tasks = list(rows[0]["per_task"]) if rows else []
    lines += ["", "Per task, test accuracy (mean ± std over seeds):", ""]
    lines.append("| method | " + " | ".join(tasks) + " |")
    lines.append("| --- |" + " ---: |" * len(tasks))
    for r in rows:
        cells = [f"{r['per_task'][t][0]:.4f} ± {r['per_task'][t][1]:.4f}" for t in tasks]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def pareto_png(rows: list[dict[str, Any]], path: Path) -> Path:
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
    ]
    return plot_tradeoff(
        points,
        path,
        title="muNet vs baselines at matched compute (mean ± std over seeds)",
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", help="comma-separated task specs (default: the config's six)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per method (0..N-1)")
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, help="methods, NAME[@S]")
    p.add_argument("--budget", nargs="*", default=[], metavar="key=value", help="config overrides")
    p.add_argument("--quick", action="store_true", help="the reduced run: 3 tasks, small budget")
    p.add_argument("--out", type=Path, default=Path("bench/out/quality"), help="systems + table")
    p.add_argument("--jobs", type=int, default=1, help="systems trained in parallel processes")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = args.tasks or QUICK_TASKS
        args.budget = QUICK_BUDGET + args.budget
    runs = plan(args)
    t0 = time.time()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
            for run, sec in zip(runs, pool.map(execute, runs), strict=True):
                print(f"{run.directory}: {sec:.0f} s", flush=True)
    else:
        for run in runs:
            print(f"{run.directory}: {execute(run):.0f} s", flush=True)
    rows = aggregate(runs)
    table = markdown(rows)
    png = pareto_png(rows, args.out / "quality-pareto.png")
    (args.out / "quality.md").write_text(
        f"Command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}\n\n{table}\n"
    )
    print(table)
    print(f"total wall {time.time() - t0:.0f} s; table {args.out / 'quality.md'}; plot {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
