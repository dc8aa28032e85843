"""``munet report``: the printed leaderboard, report.md / report.html / CSV and the PNGs."""

from __future__ import annotations

import csv
import re
import shutil

import numpy as np
import pytest
from tiny import stored

from munet.cli import main
from munet.system.score import accounted_params

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def retained(d):
    _, state = stored(d)
    return {t: ps[0] for t, ps in state.population.items()}


def printed_sections(text: str) -> dict[str, list[str]]:
    """The printed report split at its ``== name`` headers: name -> [header, lines...]."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("== "):
            key = line[3:].split(" ")[0]
            assert key not in out, f"two sections named {key}"
            out[key] = []
        if out:
            out[next(reversed(out))].append(line)
    return out


def test_report_of_two_systems(two_task_system, adapter_system, tmp_path, capsys):
    out = tmp_path / "rep"
    assert (
        main(["report", "--system", str(two_task_system), str(adapter_system), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    # the directories' names ("system", "adapters") tell the systems apart
    pngs = ["tradeoff.png", "tradeoff-tasks.png"]
    pngs += [
        f"{kind}-system.png" for kind in ("architecture", "evolution", "acceptance", "hparams")
    ]
    pngs += [f"{kind}-adapters.png" for kind in ("architecture", "evolution")]  # no evolution
    for f in pngs:
        data = (out / f).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000, f
    assert sorted(p.name for p in out.glob("*.png")) == sorted(pngs)

    # the printed leaderboard carries the stored numbers, looked up by (system, task)
    sections = printed_sections(printed)
    assert list(sections) == ["system", "adapters", "comparison"]
    for d, method in ((two_task_system, "munet"), (adapter_system, "adapters:4")):
        header, *lines = sections[d.name]
        assert header == f"== {d.name} ({method}, root builtin:vit_micro)"
        paths = retained(d)
        for task, path in paths.items():
            (line,) = [x for x in lines if x.split()[:1] == [task]]
            cells = line.split()
            assert cells[1] == f"{path.metrics['test_quality']:.4f}"
            assert f"{round(accounted_params(path)):,}" in cells
        ppt = np.mean([accounted_params(p) for p in paths.values()])
        assert f"parameters per task {round(ppt):,}" in "\n".join(lines)

    # leaderboard.csv: unrounded values equal to the store's
    rows = list(csv.DictReader(open(out / "leaderboard.csv")))
    assert [(r["system"], r["task"]) for r in rows] == [
        ("system", "digits"),
        ("system", "glyph_digits"),
        ("adapters", "digits"),
        ("adapters", "glyph_digits"),
    ]
    for r in rows:
        d = two_task_system if r["system"] == "system" else adapter_system
        paths = retained(d)
        path = paths[r["task"]]
        assert float(r["test_accuracy"]) == path.metrics["test_quality"]
        assert float(r["accounted_params"]) == pytest.approx(accounted_params(path), rel=1e-12)
        assert float(r["system_params_per_task"]) == pytest.approx(
            np.mean([accounted_params(p) for p in paths.values()]), rel=1e-12
        )
        cands = [x for x in csv.DictReader(open(d / "candidates.csv")) if x["task"] == r["task"]]
        assert int(r["candidates"]) == len(cands)
        assert int(r["images"]) == sum(int(x["images"]) for x in cands)
    # the adapter baseline: 3 replicas per task, all children of the root
    assert {r["candidates"] for r in rows if r["system"] == "adapters"} == {"3"}
    assert {r["lineage"] for r in rows if r["system"] == "adapters"} == {
        "root → digits",
        "root → glyph_digits",
    }

    # report.md links every PNG; report.html embeds every PNG and links none
    md = (out / "report.md").read_text()
    assert sorted(re.findall(r"\]\(([^)]+\.png)\)", md)) == sorted(pngs)
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(pngs)
    assert not re.search(r'src="(?!data:)', page)
    for task, path in retained(two_task_system).items():
        assert f"{path.metrics['test_quality']:.4f}" in page and task in page


def test_report_defaults_to_the_system_directory(two_task_system, tmp_path, capsys):
    d = tmp_path / "copy"
    shutil.copytree(two_task_system, d)
    assert main(["report", "--system", str(d)]) == 0
    assert (d / "report" / "report.html").is_file() and (d / "report" / "report.md").is_file()
    assert "== comparison" not in capsys.readouterr().out
    assert main(["check", "--system", str(d), "--no-eval"]) == 0


def test_report_on_a_directory_without_a_system_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--system", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error:") and "holds no munet system" in err
    assert "\n" not in err


def test_report_to_a_place_that_cannot_be_written_is_a_one_line_error(
    two_task_system, tmp_path, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["report", "--system", str(two_task_system), "--out", str(blocker / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("munet: error: cannot write the report to") and "\n" not in err
    assert "--out" in err
