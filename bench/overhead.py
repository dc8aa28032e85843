"""Where an evolve run's wall time goes: candidate training against everything around it.

    .venv/bin/python bench/overhead.py --out /tmp/overhead               # the default run
    .venv/bin/python bench/overhead.py --out /tmp/o2 --set tasks=[builtin:digits] task_iterations=1

Runs ``munet evolve`` (a new system in ``--out``/system, the default config plus ``--set``
overrides) under :mod:`cProfile` and splits its wall time into

* **candidate training**: the seconds the trainer counts for the candidates (steps, their
  share of fused frozen prefixes, validations, full-split scoring), summed from the system's
  ``candidates.csv``; this is the work the budget buys;
* **overhead**: the rest, broken down by the cumulative profile time of the functions that do
  it: loading the tasks and the root, drawing and augmenting training batches, building
  models, snapshots, new-head probes, seed screening, test evaluation, blob / journal / CSV
  writes. Rows overlap where one calls another (a test evaluation builds a model), so they do
  not sum to the overhead.

Python imports (torch, timm, torchvision: several seconds of any ``munet`` command) are timed
before the profile and reported on their own row, outside the evolve wall time.

cProfile slows Python-level code a little, never the torch kernels, so the overhead share it
reports is an upper bound. Issue 12's target: overhead under 15 % of the wall time.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import json
import pstats
import sys
import time
from pathlib import Path

#: (row, file suffix, function name): cumulative profile time of each; the overhead breakdown
PARTS = [
    ("load tasks", "munet/data/load.py", "load_tasks"),
    ("load root", "munet/model/root.py", "load_root"),
    ("training batches (draw, augment)", "munet/data/pipeline.py", "__iter__"),
    ("build models", "munet/model/vit.py", "build_model"),
    ("snapshots", "munet/train/trainer.py", "take_snapshot"),
    ("new-head probes", "munet/train/trainer.py", "init_head_from_probe"),
    ("seed screening", "munet/train/trainer.py", "screen_paths"),
    ("test evaluation", "munet/train/trainer.py", "test"),
    ("blob writes", "munet/store/blobs.py", "put"),
    ("journal appends", "munet/store/journal.py", "append"),
    ("store: generation records", "munet/store/system.py", "generation_done"),
    ("store: iteration records, tasks.csv", "munet/report/rows.py", "iteration_done"),
    ("tensorboard", "munet/report/tensorboard.py", "__call__"),
]


def cumulative(stats: pstats.Stats, suffix: str, name: str) -> float:
    """Cumulative seconds of every function ``name`` defined in a file ending with ``suffix``."""
    total = 0.0
    entries = stats.stats.items()  # type: ignore[attr-defined]
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in entries:
        if func == name and file.replace("\\", "/").endswith(suffix):
            total += ct
    return total


def candidate_seconds(system: Path) -> float:
    with open(system / "candidates.csv", newline="") as f:
        return sum(float(r["seconds"] or 0.0) for r in csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="a new directory for the run")
    p.add_argument("--set", nargs="*", default=[], metavar="key=value", help="config overrides")
    args = p.parse_args(argv)
    t_import = time.perf_counter()
    import munet.model.ops  # noqa: F401  (torch, timm, torchvision: what evolve imports lazily)
    import munet.model.root  # noqa: F401
    import munet.train.trainer  # noqa: F401
    from munet.config import parse_overrides
    from munet.runner import evolve_system

    imports = time.perf_counter() - t_import

    system = args.out / "system"
    if system.exists():
        raise SystemExit(f"{system} exists: give a new --out (the profile needs a fresh run)")
    args.out.mkdir(parents=True, exist_ok=True)
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    evolve_system(system, None, parse_overrides(args.set), log=lambda _: None, show_progress=False)
    prof.disable()
    wall = time.perf_counter() - t0
    prof.dump_stats(str(args.out / "evolve.prof"))
    stats = pstats.Stats(prof)
    train = candidate_seconds(system)
    rows = [(name, cumulative(stats, suffix, fn)) for name, suffix, fn in PARTS]
    overhead = wall - train
    lines = [
        "| part | seconds | share of wall |",
        "| --- | ---: | ---: |",
        f"| evolve wall time | {wall:.1f} | 100 % |",
        f"| candidate training | {train:.1f} | {100 * train / wall:.1f} % |",
        f"| **overhead** (the rest) | **{overhead:.1f}** | **{100 * overhead / wall:.1f} %** |",
    ]
    lines += [f"| · {name} | {sec:.1f} | {100 * sec / wall:.1f} % |" for name, sec in rows]
    lines += [f"| Python imports, before the evolve (not in its wall time) | {imports:.1f} | |"]
    table = "\n".join(lines)
    (args.out / "overhead.md").write_text(
        f"Command: {' '.join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}\n\n{table}\n"
    )
    (args.out / "overhead.json").write_text(
        json.dumps(
            {"wall_s": wall, "train_s": train, "imports_s": imports, "parts": dict(rows)}, indent=1
        )
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
