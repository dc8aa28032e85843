"""``munet check`` sees what resume needs: blobs of replayed generation batches, the manifest's
event count; a crafted journal is one line; a damaged blob names the tasks that use it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tiny import stored, tiny_args

from munet.cli import main
from munet.errors import StoreError
from munet.store.check import check_system
from munet.store.journal import Journal, encode_line
from munet.store.system import SNAPSHOT_EVENTS, SystemStore


@pytest.fixture
def system(tmp_path: Path, two_task_system: Path) -> Path:
    d = tmp_path / "system"
    shutil.copytree(two_task_system, d)
    return d


def _cut_after(d: Path, index: int) -> None:
    """Keep the journal's first ``index + 1`` lines (a journal that lost its later events)."""
    journal = d / "journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines[: index + 1]))


def test_a_journal_that_lost_acknowledged_events_is_not_intact(system: Path) -> None:
    journal = system / "journal.jsonl"
    journal.write_bytes(journal.read_bytes()[:-100])  # 100 bytes off the last line
    problems = check_system(system)
    assert any("acknowledged events were lost" in p for p in problems), problems


def test_a_missing_blob_of_a_replayed_generation_is_reported(system: Path) -> None:
    events = Journal(system / "journal.jsonl").read()
    # the first generation batch of the first task: every candidate that trained is accepted
    first = next(i for i, e in enumerate(events) if e["type"] == "generation")
    _cut_after(system, first)
    store = SystemStore(system)
    store.read()
    store.load_state(load_tensors=False)
    (key, cid, _record), *_ = store.replay_blobs()
    store.blobs.path(cid).unlink(missing_ok=True)  # later snapshots may have collected it
    problems = check_system(system)
    needle = f"{cid}.safetensors is missing (needed to resume: generation batch {key[2]}"
    assert any(needle in p for p in problems), problems


def test_the_previous_snapshot_and_its_generations_keep_their_blobs(system: Path) -> None:
    """Garbage collection trails the newest snapshot by one: losing it (or reading the journal
    just before it was written) still finds every blob."""
    events = Journal(system / "journal.jsonl").read()
    snaps = [i for i, e in enumerate(events) if e["type"] in SNAPSHOT_EVENTS]
    _cut_after(system, snaps[-1] - 1)  # drop the newest snapshot only
    (system / "manifest.json").unlink()
    assert check_system(system) == []
    store = SystemStore(system)
    store.read()
    store.load_state(load_tensors=True)  # every snapshot blob loads
    for _key, cid, record in store.replay_blobs():
        store.blobs.get(cid, record)


def test_resume_after_losing_the_last_snapshot_line(system: Path, capsys) -> None:
    journal = system / "journal.jsonl"
    journal.write_bytes(journal.read_bytes()[:-100])
    (system / "manifest.json").unlink()  # the loss is known; resume must still work
    assert main(tiny_args(system, "builtin:digits,builtin:glyph_digits")) == 0, (
        capsys.readouterr().err
    )
    assert check_system(system) == []


def test_a_damaged_blob_names_the_tasks_that_use_it(system: Path) -> None:
    store, state = stored(system)
    head = state.population["glyph_digits"][0].component("head").id
    store.blobs.path(head).write_bytes(b"garbage")
    problems = check_system(system)
    assert any(
        f"{head}.safetensors is corrupt" in p and "tasks: glyph_digits)" in p for p in problems
    )


@pytest.mark.parametrize(
    "event",
    [
        {"type": "iteration_end", "state": {"components": [{"id": 1}]}},
        {"type": "iteration_end", "state": None},
        {"type": "generation", "task": "digits"},
    ],
)
def test_a_crafted_journal_is_one_line(system: Path, event: dict, capsys) -> None:
    with (system / "journal.jsonl").open("ab") as f:
        f.write(encode_line(event))
    with pytest.raises(StoreError, match="malformed event"):
        check_system(system)
    assert main(["check", "--system", str(system), "--no-eval"]) != 0
    err = capsys.readouterr().err.strip()
    assert "malformed event" in err and "\n" not in err


def test_a_line_without_a_type_is_corruption(system: Path) -> None:
    import json
    import zlib

    from munet.fileio.jsoncodec import canonical_json

    body = canonical_json({"no_type": 1}, "event")
    crc = zlib.crc32(body.encode()) & 0xFFFFFFFF
    line = json.dumps({"crc": crc, "event": json.loads(body)}).encode() + b"\n"
    journal = system / "journal.jsonl"
    first, rest = journal.read_bytes().split(b"\n", 1)
    journal.write_bytes(first + b"\n" + line + rest)
    with pytest.raises(StoreError, match="damaged at line 2"):
        check_system(system)
