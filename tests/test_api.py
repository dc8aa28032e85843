"""The top-level Python API on a tiny system: evolve with callbacks, config of a stored system,
check and add_tasks' argument rules."""

from __future__ import annotations

import logging
import re

import pytest
import yaml
from tiny import TINY

import munet
from munet.cli import main
from munet.config import parse_overrides


def tiny_keys(**extra):
    keys = parse_overrides([a for a in TINY if "=" in a])
    keys["root"] = TINY[TINY.index("--root") + 1]
    return {**keys, **extra}


@pytest.fixture(scope="module")
def evolved(tmp_path_factory):
    d = tmp_path_factory.mktemp("api") / "system"
    events = []
    lines = []
    outcome = munet.evolve(
        d,
        tasks=["builtin:digits"],
        callbacks=[events.append],
        log=lines.append,
        show_progress=False,
        **tiny_keys(task_iterations=1),
    )
    return d, outcome, events, lines


def test_log_receives_the_progress_lines_with_the_count(evolved):
    d, _, _, lines = evolved
    assert lines[0].startswith(f"created system {d} ")
    cands = [line for line in lines if line.lstrip().startswith("cand ")]
    assert [c.rsplit("  [", 1)[1].split(",")[0] for c in cands] == ["1/3", "2/3", "3/3"]


def test_callbacks_receive_typed_events_in_order(evolved):
    d, outcome, events, _ = evolved
    kinds = [type(e).__name__ for e in events]
    # candidates_per_iteration=3, one task iteration, then the run's end
    assert kinds == ["CandidateTrained"] * 3 + ["IterationEnded", "RunEnded"]
    cands = [e for e in events if isinstance(e, munet.CandidateTrained)]
    assert [c.candidate for c in cands] == [0, 1, 2]
    assert all(c.task == "digits" and c.iteration == 0 for c in cands)
    assert all(isinstance(c.mutations, tuple) and c.seconds >= 0 for c in cands)
    end_it = events[3]
    assert isinstance(end_it, munet.IterationEnded)
    (row,) = outcome.rows
    assert end_it.task == "digits" and end_it.test_accuracy == row["test_accuracy"]
    assert end_it.best_path_id in {c.path_id for c in cands if c.accepted} | {0}
    end = events[4]
    assert isinstance(end, munet.RunEnded)
    assert (end.directory, end.trained) == (d, 3)
    assert list(end.rows) == outcome.rows
    with pytest.raises(AttributeError):
        end.trained = 4  # frozen


def test_check_of_the_evolved_system_is_clean_and_logs_instead_of_printing(evolved, capsys, caplog):
    d, *_ = evolved
    caplog.set_level(logging.INFO, logger="munet")
    assert munet.check(d, evaluate=False) == []
    assert capsys.readouterr() == ("", "")  # the library never prints
    said = [r.getMessage() for r in caplog.records if r.name == "munet.store.check"]
    assert any(re.fullmatch(r"blobs: \d+ components and 0 to replay checked", m) for m in said)


def test_config_of_a_stored_system_starts_from_its_config(evolved, capsys):
    d, *_ = evolved
    assert main(["config", "--system", str(d), "task_iterations=5"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["tasks"] == ["builtin:digits"] and cfg["root"] == "builtin:vit_micro"
    assert cfg["task_iterations"] == 5 and cfg["batch_size"] == 32


def test_add_tasks_takes_new_tasks_only_as_its_argument(evolved):
    d, *_ = evolved
    with pytest.raises(TypeError, match="tasks"):
        munet.add_tasks(d, ["builtin:glyph_digits"], tasks=["builtin:x"])
