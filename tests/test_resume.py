"""Durability: SIGKILL at random moments, resume, and get the uninterrupted system exactly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tiny import SEED, stored, tiny_args

from munet.cli import main
from munet.store.system import SystemStore

TASKS = "builtin:digits,builtin:glyph_digits"
VOLATILE = ("seconds",)
LONGER = ("candidates_per_iteration=6", "validation_interval_cap=30")  # long enough to kill


def fingerprint(d: Path) -> dict:
    """Everything that must match between runs: paths, metrics, locks and tensor hashes."""
    store, state = stored(d)
    comps = state.live_components()
    out = {
        "iterations": dict(state.iterations_done),
        "counters": (state.next_component_id, state.next_path_id),
        "paths": sorted(
            (
                p.id,
                p.task,
                p.parent.id if p.parent else None,
                tuple(c.id for c in p.components),
                tuple(sorted((k, str(v)) for k, v in p.metrics.items() if k not in VOLATILE)),
                (p.generation, p.offspring),
            )
            for p in state.all_paths()
        ),
        "components": sorted(
            (c.id, c.name, tuple(sorted(c.locks)), store.blob_records[c.id]["sha256"])
            for c in comps.values()
        ),
        "candidates": [
            {k: v for k, v in r.items() if k not in VOLATILE}  # as journaled, blobs included
            for e in store.events
            if e["type"] == "generation"
            for r in e["candidates"]
        ],
    }
    return out


def run_cli(d: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "munet.cli", *tiny_args(d, TASKS, *LONGER)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )


def wait_for_growth(journal: Path, size: int, proc: subprocess.Popen) -> int:
    """Wait until ``journal`` is larger than ``size`` bytes (or the process ended)."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        now = journal.stat().st_size if journal.exists() else 0
        if now > size:
            return now
        time.sleep(0.02)
    return journal.stat().st_size if journal.exists() else 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("ref") / "system"
    assert main(tiny_args(d, TASKS, *LONGER)) == 0
    return fingerprint(d)


def test_sigkill_at_random_moments_then_resume_gives_the_same_system(tmp_path, reference):
    d = tmp_path / "system"
    rng = random.Random(1234)
    kills = 0
    seen = 0
    for _ in range(8):
        proc = run_cli(d)
        # kill after the run made progress (a new journal event), at a random moment after it:
        # event-driven, so a faster or slower CPU still gets killed mid-run
        seen = wait_for_growth(d / "journal.jsonl", seen, proc)
        time.sleep(rng.uniform(0.0, 1.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
    proc = run_cli(d)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert kills >= 2, "the run finished too fast to be killed; lengthen it"
    assert fingerprint(d) == reference


CRASH_DURING_SAVE = """
import os, sys
import munet.fileio.atomic as atomic
import munet.store.journal as journal
mode, n = sys.argv[1], int(sys.argv[2])
calls = [0]
if mode == "replace":  # die after the temp file is written, before the rename
    real = os.replace
    def replace(src, dst):
        calls[0] += 1
        if calls[0] == n:
            os._exit(9)
        real(src, dst)
    atomic.os.replace = replace
else:  # die half-way through writing a journal line
    real = journal.write_all
    def write_all(fd, data):
        calls[0] += 1
        if calls[0] == n:
            real(fd, data[: len(data) // 2])
            os._exit(9)
        real(fd, data)
    journal.write_all = write_all
from munet.cli import main
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize(("mode", "nth"), [("replace", 3), ("replace", 9), ("journal", 4)])
def test_crash_during_a_save_then_resume_gives_the_same_system(tmp_path, reference, mode, nth):
    d = tmp_path / "system"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH_DURING_SAVE, mode, str(nth), *tiny_args(d, TASKS, *LONGER)],
        capture_output=True,
    )
    assert crashed.returncode == 9, crashed.stdout.decode()[-1000:]
    assert main(tiny_args(d, TASKS, *LONGER)) == 0
    assert fingerprint(d) == reference


def test_growing_the_budget_is_allowed_and_changing_the_root_is_refused(tmp_path, capsys):
    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1")) == 0
    journal = (d / "journal.jsonl").read_bytes()
    capsys.readouterr()  # the first run's progress
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1", f"seed={SEED + 5}")) == 2
    err = capsys.readouterr().err
    assert "seed" in err and err.count("\n") == 1
    assert (d / "journal.jsonl").read_bytes() == journal  # nothing written
    assert main(tiny_args(d, "builtin:digits", "task_iterations=2")) == 0
    store = SystemStore(d)
    store.read()
    assert store.load_state(load_tensors=False).iterations_done == {"digits": 2}
    assert yaml.safe_load((d / "config.yaml").read_text())["task_iterations"] == 2


def test_torn_journal_line_is_dropped_and_the_run_resumes(tmp_path, reference):
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *LONGER, "task_iterations=1")) == 0
    journal = d / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    # a kill in the middle of appending the next event leaves half a line behind
    journal.write_bytes(b"".join(lines) + lines[-2][: len(lines[-2]) // 2])
    assert main(tiny_args(d, TASKS, *LONGER)) == 0
    assert fingerprint(d) == reference
    # the torn bytes were cut off before the next event was appended
    assert all(line.endswith(b"}\n") for line in journal.read_bytes().splitlines(keepends=True))


def test_truncated_blob_is_reported_not_loaded(tmp_path, capsys):
    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1")) == 0
    store, state = stored(d)
    (path,) = state.population["digits"]
    head = path.component("head").id
    blob = store.blobs.path(head)
    blob.write_bytes(blob.read_bytes()[:-7])
    assert main(["check", "--system", str(d)]) == 1
    out = capsys.readouterr().out
    assert f"{head}.safetensors" in out and "PROBLEM" in out
    # evolving further refuses to load it with a one-line error instead of using garbage
    assert main(tiny_args(d, "builtin:digits", "task_iterations=2")) == 2
    assert "safetensors" in capsys.readouterr().err


def test_check_detects_a_tampered_tensor(tmp_path, capsys):
    import torch
    from safetensors.torch import load_file, save_file

    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1")) == 0
    store, state = stored(d)
    head = state.population["digits"][0].component("head").id
    f = store.blobs.path(head)
    tensors = load_file(str(f))
    tensors["bias"] = tensors["bias"] + torch.ones_like(tensors["bias"])
    save_file(tensors, str(f), metadata={"format": "pt"})
    assert main(["check", "--system", str(d)]) == 1
    assert "corrupt" in capsys.readouterr().out


def test_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    from munet.store.lock import SystemLock

    d = tmp_path / "s"
    assert main(tiny_args(d, "builtin:digits", "task_iterations=1")) == 0
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from munet.store.lock import SystemLock\n"
            f"l=SystemLock({str(d)!r}); l.acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout.readline().strip() == b"held"
    try:
        assert main(tiny_args(d, "builtin:digits", "task_iterations=2")) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid}" in err
    finally:
        holder.kill()
        holder.wait()
    with SystemLock(d):
        pass


def test_paired_acceptance_replays_its_verdicts_exactly(tmp_path):
    """``accept_z``: the hits a verdict depends on come back from the journal (replayed
    generations) and from the state snapshot (parents), so a resume judges as the first run."""
    z = ("accept_z=1",)
    ref = tmp_path / "ref"
    assert main(tiny_args(ref, TASKS, *z)) == 0
    want = fingerprint(ref)
    records = want["candidates"]
    assert all(r["val_hits"] for r in records)  # every candidate carries its hits
    assert any(r["margin"] > 0 for r in records)  # and some were judged with a margin
    d = tmp_path / "system"
    assert main(tiny_args(d, TASKS, *z, "task_iterations=1")) == 0
    lines = (d / "journal.jsonl").read_bytes().splitlines(keepends=True)
    # a kill just before the last iteration ended: its generations are replayed, not trained
    assert b'"iteration_end"' in lines[-1] and b'"generation"' in lines[-2]
    (d / "journal.jsonl").write_bytes(b"".join(lines[:-1]))
    assert main(tiny_args(d, TASKS, *z)) == 0
    assert fingerprint(d) == want
    # crafted damage with valid CRCs: malformed hits in a replayed record or in the snapshot
    # are a damaged journal (one line), never a traceback or a silent plain comparison
    import json

    from munet.errors import StoreError
    from munet.store.journal import encode_line

    good = (d / "journal.jsonl").read_bytes()
    lines = good.splitlines(keepends=True)
    for target in (-2, -1):  # the last generation, the last snapshot
        event = json.loads(lines[target])["event"]
        if event["type"] == "generation":
            event["candidates"][0]["val_hits"] = "9:zz"
        else:
            next(p for p in event["state"]["paths"] if "val_hits" in p["metrics"])["metrics"][
                "val_hits"
            ] = "240:00"
        damaged = lines[:target] + [encode_line(event)] + lines[len(lines) + target + 1 :]
        (d / "journal.jsonl").write_bytes(b"".join(damaged))
        with pytest.raises(StoreError, match="malformed event") as err:
            SystemStore(d).load_state(load_tensors=False)
        assert "\n" not in str(err.value)
    (d / "journal.jsonl").write_bytes(good)
