"""Floors: a logistic regression on raw pixels for every task, beside a system's test accuracy.

    python bench/floors.py                               # floors of the six built-in tasks
    python bench/floors.py --system munet-system          # ... beside that system's accuracies
    python bench/floors.py --tasks builtin:digits,imagefolder:/data/my_task

Each floor is scikit-learn's ``LogisticRegression`` (lbfgs, C=1, up to 500 iterations) fit on
the task's training split, pixels scaled to [0, 1] and standardised, and scored on the same test
split munet uses. Floors are cached by the task's fingerprint: ``bench/floors.json`` (committed,
so a fresh clone does not spend minutes on Fashion-MNIST's 57,000 images; ``--record`` writes new
floors there) and the munet cache. A task whose fingerprint is in neither (a task of yours, or
a glyph task rendered with other floats on another CPU) is fitted once. A system that does not
clear a floor on some task is no better than a linear model there: the table marks it, and
``--strict`` makes that an exit status of 1.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def pixel_floor(data) -> float:
    """Test accuracy of a standardised logistic regression on the task's raw pixels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def flat(x) -> np.ndarray:
        return x.reshape(x.shape[0], -1).numpy().astype(np.float32) / 255.0

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=500))
    model.fit(flat(data.train_x), data.train_y.numpy())
    return float((model.predict(flat(data.test_x)) == data.test_y.numpy()).mean())


COMMITTED = Path(__file__).with_name("floors.json")


def cached_floor(data, say=print, record: bool = False) -> float:
    from munet.data.cache import cache_root

    key = data.split_info["fingerprint"]
    committed = json.loads(COMMITTED.read_text()) if COMMITTED.is_file() else {}
    path = cache_root() / "floors" / f"{key[:16]}.json"
    if key in committed:
        floor = float(committed[key]["floor"])
    elif path.is_file():
        floor = float(json.loads(path.read_text())["floor"])
    else:
        t0 = time.time()
        floor = pixel_floor(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"task": data.name, "floor": floor}))
        say(f"  floor of {data.name}: {floor:.4f} ({time.time() - t0:.0f} s)")
    if record and key not in committed:
        committed[key] = {"task": data.name, "floor": floor}
        COMMITTED.write_text(json.dumps(committed, indent=1, sort_keys=True) + "\n")
    return floor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default=None, help="a system directory to compare with")
    ap.add_argument("--tasks", default=None, help="task specs (default: the system's or built-in)")
    ap.add_argument("--record", action="store_true", help="add new floors to bench/floors.json")
    ap.add_argument("--strict", action="store_true", help="exit 1 if a task is below its floor")
    args = ap.parse_args()
    from munet.config import DEFAULT_TASKS
    from munet.data.load import load_tasks

    accs: dict[str, float | None] = {}
    specs = list(DEFAULT_TASKS)
    if args.system:
        from munet.report.rows import task_rows
        from munet.store.system import SystemStore

        store = SystemStore(Path(args.system))
        store.read()
        specs = [m["spec"] for m in store.tasks().values()]
        accs = {r["task"]: r["test_accuracy"] for r in task_rows(store.load_state(False))}
    if args.tasks:
        specs = [t for t in args.tasks.split(",") if t]
    tasks = load_tasks(specs)
    print(f"{'task':<16}{'pixel LR floor':>15}{'munet test acc':>16}  clears floor")
    below = 0
    for name, data in tasks.items():
        floor = cached_floor(data, record=args.record)
        acc = accs.get(name)
        mark = "" if acc is None else ("yes" if acc > floor else "NO")
        below += mark == "NO"
        shown = "" if acc is None else f"{acc:.4f}"
        print(f"{name:<16}{floor:>15.4f}{shown:>16}  {mark}")
    return 1 if below and args.strict else 0


if __name__ == "__main__":
    raise SystemExit(main())
