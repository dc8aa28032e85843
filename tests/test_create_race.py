"""Two evolve runs racing to create the same new system directory: one wins, one is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tiny import THREADS

from munet.errors import StoreError
from munet.runner import evolve_system
from munet.store.journal import Journal

TINY = {
    "root": "builtin:vit_micro",
    "tasks": ["builtin:digits"],
    "task_iterations": 1,
    "candidates_per_iteration": 1,
    "generation_batch_size": 1,
    "batch_size": 32,
    "validations_per_candidate": 1,
    "validation_interval_cap": 5,
    "threads": THREADS,
}


def test_a_second_creator_is_refused_under_the_lock(tmp_path: Path, monkeypatch) -> None:
    import munet.execute as execute

    d = tmp_path / "system"
    real_open = execute.open_executor

    def open_after_the_other_run(cfg, say):  # noqa: ANN001, ANN202
        # seed 1 has passed its "is there a system here?" check; seed 0 now creates one
        monkeypatch.setattr(execute, "open_executor", real_open)
        evolve_system(d, overrides={**TINY, "seed": 0}, log=lambda m: None, show_progress=False)
        return real_open(cfg, say)

    monkeypatch.setattr(execute, "open_executor", open_after_the_other_run)
    with pytest.raises(StoreError, match="another munet evolve created a system"):
        evolve_system(d, overrides={**TINY, "seed": 1}, log=lambda m: None, show_progress=False)
    events = Journal(d / "journal.jsonl").read()
    assert [e["type"] for e in events].count("created") == 1
    assert events[0]["config"]["seed"] == 0
    assert yaml.safe_load((d / "config.yaml").read_text())["seed"] == 0
