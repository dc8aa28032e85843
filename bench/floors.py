"""Floors: a logistic regression on raw pixels for every task, beside a system's test accuracy.

    python bench/floors.py                               # floors of the six built-in tasks
    python bench/floors.py --system munet-system          # ... beside that system's accuracies
    python bench/floors.py --tasks builtin:digits,imagefolder:/data/my_task

Each floor is scikit-learn's ``LogisticRegression`` (lbfgs, C=1, up to 500 iterations) fit on
the task's training split, pixels scaled to [0, 1] and standardised, and scored on the same test
split munet uses. Floors are cached by the task's fingerprint under the munet cache, so they are
computed once per task. A system that does not clear a floor on some task is no better than a
linear model there: the table marks it.
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


def cached_floor(data, say=print) -> float:
    from munet.data.cache import resolve_cache_dir

    path = resolve_cache_dir(None) / "floors" / f"{data.split_info['fingerprint'][:16]}.json"
    if path.is_file():
        return float(json.loads(path.read_text())["floor"])
    t0 = time.time()
    floor = pixel_floor(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"task": data.name, "floor": floor}))
    say(f"  floor of {data.name}: {floor:.4f} ({time.time() - t0:.0f} s)")
    return floor


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", default=None, help="a system directory to compare with")
    ap.add_argument("--tasks", default=None, help="task specs (default: the system's or built-in)")
    args = ap.parse_args()
    from munet.config import DEFAULT_TASKS
    from munet.runner import load_tasks

    accs: dict[str, float | None] = {}
    specs = list(DEFAULT_TASKS)
    if args.system:
        from munet.store.system import SystemStore, task_rows

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
        floor = cached_floor(data)
        acc = accs.get(name)
        mark = "" if acc is None else ("yes" if acc > floor else "NO")
        below += mark == "NO"
        shown = "" if acc is None else f"{acc:.4f}"
        print(f"{name:<16}{floor:>15.4f}{shown:>16}  {mark}")
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
