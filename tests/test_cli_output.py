"""What the CLI writes where: results (tables, JSON) on stdout, progress and logs on stderr;
-q, -v and --log-level before or after the verb; --json documents of evolve, check and report."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from tiny import tiny_args

from munet.cli import build_parser, log_level, main
from munet.store.system import SystemStore
from munet.system.score import accounted_params

#: A piped candidate line ends with the count and the time left: ``[2/3, 00:04 elapsed, ETA
#: 00:02]``.
COUNTED = re.compile(r"\[(\d+)/(\d+), \d\d:\d\d elapsed, ETA (\d\d:\d\d|--:--)\]$")


def retained(d: Path) -> dict:
    store = SystemStore(d)
    store.read()
    state = store.load_state(load_tensors=False)
    return {task: paths[0] for task, paths in state.population.items() if paths}


def test_evolve_json_is_the_only_stdout_and_progress_counts_on_stderr(tmp_path, capsys):
    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1", "--json")) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # nothing but the document on stdout
    path = retained(d)["digits"]
    assert doc["system"] == str(d) and doc["candidates_trained"] == 3
    (task,) = doc["tasks"]
    assert task["task"] == "digits" and task["path_id"] == path.id
    assert task["test_accuracy"] == path.metrics["test_quality"]
    assert task["val_accuracy"] == path.metrics["quality"]
    assert task["accounted_params"] == round(accounted_params(path))
    assert doc["mean_test_accuracy"] == path.metrics["test_quality"]
    assert doc["params_per_task"] == task["accounted_params"]
    assert "root" in task["shared_with"] and "head" in task["private"]
    # progress: one line per candidate, counting 1/3, 2/3, 3/3 with an ETA (stderr is a pipe)
    cands = [line for line in captured.err.splitlines() if line.lstrip().startswith("cand ")]
    counts = [COUNTED.search(line).group(1, 2) for line in cands]
    assert counts == [("1", "3"), ("2", "3"), ("3", "3")]
    assert COUNTED.search(cands[-1]).group(3) == "00:00"
    assert f"created system {d}" in captured.err and "== digits: best path" in captured.err

    # resumed with -q after the verb: the table on stdout, nothing on stderr
    assert main([*tiny_args(d, "builtin:digits", "task_iterations=2"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines()[0].split()[:3] == ["task", "test", "acc"]
    assert "candidates trained" in captured.out and "cand " not in captured.out


def test_check_json_lists_the_problems(two_task_system, tmp_path, capsys):
    assert main(["check", "--system", str(two_task_system), "--json", "--no-eval"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc == {"system": str(two_task_system), "ok": True, "evaluated": False, "problems": []}
    assert "blobs: " in captured.err and "check blobs" in captured.err

    damaged = tmp_path / "damaged"
    shutil.copytree(two_task_system, damaged)
    blob = sorted(damaged.rglob("*.safetensors"))[0]
    blob.write_bytes(blob.read_bytes()[:-7])
    assert main(["check", "--system", str(damaged), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["evaluated"] is True
    assert doc["problems"] and any(blob.name in p for p in doc["problems"])


def test_report_json_carries_the_leaderboard_and_progress_goes_to_stderr(
    two_task_system, tmp_path, capsys
):
    out = tmp_path / "rep"
    assert main(["report", "--system", str(two_task_system), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["html"] == str(out / "report.html") and Path(doc["html"]).is_file()
    assert sorted(Path(p).name for p in doc["images"]) == sorted(p.name for p in out.glob("*.png"))
    (system,) = doc["systems"]
    assert system["name"] == two_task_system.name and system["method"] == "munet"
    paths = retained(two_task_system)
    assert {t["task"]: t["test_accuracy"] for t in system["tasks"]} == {
        task: p.metrics["test_quality"] for task, p in paths.items()
    }
    mean = sum(p.metrics["test_quality"] for p in paths.values()) / len(paths)
    assert system["mean_test_accuracy"] == pytest.approx(mean)
    # six plots (two trade-offs, four of the one evolved system), counted when piped
    assert re.search(r"^report plots 6/6, \d\d:\d\d elapsed, ETA 00:00$", captured.err, re.M)


@pytest.mark.parametrize(
    "flags",
    [
        ["-q", "check"],
        ["check", "--quiet"],
        ["--log-level", "warning", "check"],
        ["check", "--log-level", "ERROR"],
        ["-v", "check", "--log-level", "WARNING"],  # an explicit level wins
    ],
)
def test_quiet_and_log_level_silence_progress_anywhere_on_the_line(two_task_system, capsys, flags):
    assert main([*flags, "--system", str(two_task_system), "--no-eval"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == "ok: system intact\n"


@pytest.mark.parametrize("flags", [["-v", "check"], ["check", "--verbose"]])
def test_verbose_adds_debug_lines(two_task_system, capsys, flags):
    assert main([*flags, "--system", str(two_task_system), "--no-eval"]) == 0
    err = capsys.readouterr().err
    assert "debug [munet.store.check] manifest, blobs and train locks: 0 problem(s)" in err
    assert main(["check", "--system", str(two_task_system), "--no-eval"]) == 0
    err = capsys.readouterr().err
    assert "blobs: " in err and "debug" not in err


def test_every_verb_takes_the_output_flags():
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    for name, verb in verbs.items():
        options = {s for a in verb._actions for s in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose", "--log-level"} <= options, name
    assert log_level(parser.parse_args(["tasks"])) == logging.INFO
    assert log_level(parser.parse_args(["-q", "tasks"])) == logging.WARNING
    assert log_level(parser.parse_args(["tasks", "-v"])) == logging.DEBUG
    assert log_level(parser.parse_args(["--log-level", "debug", "tasks", "-q"])) == logging.DEBUG
    with pytest.raises(SystemExit):
        parser.parse_args(["--log-level", "chatty", "tasks"])


def test_the_cli_leaves_logging_as_it_found_it(capsys):
    logger = logging.getLogger("munet")
    handlers, level = list(logger.handlers), logger.level
    root = list(logging.getLogger().handlers)
    assert main(["-v", "tasks"]) == 0
    assert logger.handlers == handlers and logger.level == level
    assert logging.getLogger().handlers == root  # the root logger is never configured
    assert "glyph_digits" in capsys.readouterr().out  # -v does not hide results
