"""Candidates per hour with 1 vs 2 Ray workers (and the local executor), side by side.

Every repeat evolves the same small system once per executor setting, in interleaved order, so
that the machine's background load hits all settings alike; the ratio is what to read.
Throughput counts the evolution loop (first task iteration start to the end: training,
validation, test evaluation, store writes), and separately the whole call including Ray worker
start-up.

    .venv/bin/python bench/scale.py                       # prints a table
    .venv/bin/python bench/scale.py --write               # also updates bench/RESULTS-scale.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS-scale.md"
BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def run_once(settings: dict, base: dict) -> dict:
    """Evolve a fresh system; returns loop and total seconds and what was trained."""
    from munet.runner import evolve_system
    from munet.store.system import SystemStore

    marks: list[tuple[float, str]] = []

    def log(msg: str) -> None:
        marks.append((time.perf_counter(), msg))

    with tempfile.TemporaryDirectory(prefix="munet-scale-") as tmp:
        t0 = time.perf_counter()
        out = evolve_system(Path(tmp) / "s", None, {**base, **settings}, log, False)
        t1 = time.perf_counter()
        store = SystemStore(out.directory)
        store.read()
        busy = sum(r["seconds"] for r in store.candidate_rows())
    start = next(t for t, m in marks if m.startswith("== task"))
    return {"loop": t1 - start, "total": t1 - t0, "trained": out.trained, "busy": busy}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", default="builtin:vit_ti3")
    p.add_argument("--tasks", default="builtin:digits,builtin:glyph_digits")
    p.add_argument("--candidates", type=int, default=8, help="candidates per task iteration")
    p.add_argument("--generation-batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--no-local", action="store_true", help="skip the local-executor reference")
    p.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    args = p.parse_args()

    import ray

    cpus = os.cpu_count() or 1
    ray.init(
        num_cpus=cpus, include_dashboard=False, logging_level="ERROR", _node_ip_address="127.0.0.1"
    )
    base = {
        "root": args.root,
        "tasks": [t for t in args.tasks.split(",") if t],
        "task_iterations": 1,
        "candidates_per_iteration": args.candidates,
        "generation_batch_size": args.generation_batch,
        "threads": 1,
    }
    settings = {"ray, 1 worker": {"executor": "ray", "workers": 1}}
    settings["ray, 2 workers"] = {"executor": "ray", "workers": 2}
    if not args.no_local:
        settings = {"local (in-process)": {"executor": "local"}, **settings}
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for rep in range(args.repeats):
        order = list(settings) if rep % 2 == 0 else list(reversed(settings))
        for name in order:
            r = run_once(settings[name], base)
            runs[name].append(r)
            print(
                f"repeat {rep} {name:<20} loop {r['loop']:6.1f} s  total {r['total']:6.1f} s  "
                f"{r['trained']} candidates",
                flush=True,
            )
    load_after = os.getloadavg()
    ray.shutdown()

    def per_hour(name: str, key: str) -> float:
        return statistics.median(3600 * r["trained"] / r[key] for r in runs[name])

    one = per_hour("ray, 1 worker", "loop")
    lines = [
        "| executor | candidates/hour (loop) | candidates/hour (incl. start-up) | "
        "vs 1 worker | busy/loop |",
        "|---|---|---|---|---|",
    ]
    for name in settings:
        busy = statistics.median(r["busy"] / r["loop"] for r in runs[name])
        lines.append(
            f"| {name} | {per_hour(name, 'loop'):,.0f} | {per_hour(name, 'total'):,.0f} | "
            f"{per_hour(name, 'loop') / one:.2f}x | {busy:.2f} |"
        )
    trained = runs["ray, 1 worker"][0]["trained"]
    cmd = " ".join([".venv/bin/python", *sys.argv])
    info = [
        f"Command: `{cmd}`",
        "",
        f"Machine: {cpus} CPU cores ({platform.processor() or platform.machine()}), no GPU; "
        f"1-minute load average {load_before[0]:.1f} before, {load_after[0]:.1f} after. "
        f"Workload: root {args.root}, tasks {args.tasks}, 1 task iteration each, "
        f"{args.candidates} candidates per iteration in generation batches of "
        f"{args.generation_batch} ({trained} candidates per run), default training length; "
        f"median of {args.repeats} interleaved repeats.",
        "",
        *lines,
        "",
        "*loop*: from the first task iteration's start to the end of the run; *incl. start-up*: "
        "the whole `evolve_system` call (Ray worker start-up, root and data loading); "
        "*busy/loop*: summed per-candidate training seconds over loop seconds (about 1 for "
        "one worker, up to the worker count when workers keep busy).",
    ]
    text = "\n".join(info)
    print()
    print(text)
    if args.write:
        old = RESULTS.read_text() if RESULTS.exists() else f"{BEGIN}\n{END}\n"
        head, rest = old.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        RESULTS.write_text(f"{head}{BEGIN}\n{text}\n{END}{tail}")
        print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
