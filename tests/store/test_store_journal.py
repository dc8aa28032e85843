"""Journal: round-trip, torn last lines, corruption detection."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from munet.errors import StoreError
from munet.fileio.jsoncodec import decode_float
from munet.store.journal import Journal, encode_line

EVENTS = [
    {"type": "start", "config": {"lr": 0.001, "seed": 7}},
    {"type": "score", "task": "cifar10", "score": 0.1 + 0.2, "tiny": 5e-324, "big": 1.7e308},
    {"type": "note", "text": "ünïcode ✓", "ids": [1, 2, 3], "nested": {"a": None, "b": True}},
]


def test_round_trip(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.jsonl")
    assert journal.read() == []
    for event in EVENTS:
        journal.append(event)
    assert journal.read() == EVENTS
    assert Journal(tmp_path / "journal.jsonl").read() == EVENTS
    lines = (tmp_path / "journal.jsonl").read_bytes().split(b"\n")
    assert len(lines) == 4 and lines[-1] == b""
    first = json.loads(lines[0])
    assert set(first) == {"crc", "event"} and first["event"] == EVENTS[0]
    score = Journal(tmp_path / "journal.jsonl").read()[1]["score"]
    assert score == 0.30000000000000004 and score.hex() == (0.1 + 0.2).hex()


def test_non_finite_floats_stored_as_strings(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.append({"type": "loss", "values": [math.nan, math.inf, -math.inf, 1.5]})
    (event,) = journal.read()
    assert event["values"] == ["nan", "inf", "-inf", 1.5]
    decoded = [decode_float(v) for v in event["values"]]
    assert math.isnan(decoded[0]) and decoded[1:] == [math.inf, -math.inf, 1.5]


finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | finite | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None)
@given(payload=st.dictionaries(st.text(max_size=6), json_values, max_size=5), x=finite)
def test_property_round_trip_exact(tmp_path_factory: pytest.TempPathFactory, payload, x) -> None:
    journal = Journal(tmp_path_factory.mktemp("j") / "journal.jsonl")
    event = {**payload, "type": "p", "x": x}
    journal.append(event)
    journal.append({"type": "after"})
    got = journal.read()
    assert got == [event, {"type": "after"}]
    assert got[0]["x"].hex() == float(x).hex()  # exact, including -0.0


def test_invalid_events_rejected_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = Journal(path)
    with pytest.raises(StoreError, match="'type'"):
        journal.append({"score": 1.0})
    with pytest.raises(StoreError, match="must be a dict"):
        journal.append(["type", "x"])  # type: ignore[arg-type]
    with pytest.raises(StoreError, match=r"event\.t is a builtins\.object"):
        journal.append({"type": "x", "t": object()})
    assert not path.exists()


def test_torn_last_line_dropped_then_truncated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(EVENTS[0])
    journal.append(EVENTS[1])
    good = path.read_bytes()
    with open(path, "ab") as f:  # simulate a crash halfway through writing a line
        f.write(b'{"crc":123,"event":{"type":"hal')
    with caplog.at_level(logging.WARNING, logger="munet.store.journal"):
        assert Journal(path).read() == EVENTS[:2]
    assert "line 3 is torn" in caplog.text and str(path) in caplog.text
    assert path.read_bytes().startswith(good) and len(path.read_bytes()) > len(good)  # untouched

    fresh = Journal(path)  # a new process opening the journal
    fresh.append(EVENTS[2])
    assert path.read_bytes() == good + encode_line(EVENTS[2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="munet.store.journal"):
        assert Journal(path).read() == EVENTS
    assert caplog.text == ""


def test_torn_line_written_by_same_object_is_repaired(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(EVENTS[0])
    with open(path, "ab") as f:
        f.write(b'{"crc":1')
    journal.append(EVENTS[1])  # same object: its cached size no longer matches -> repair
    assert Journal(path).read() == EVENTS[:2]


def test_corrupt_complete_last_line_is_dropped_and_repaired(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(EVENTS[0])
    journal.append({"type": "x", "v": 1})
    data = path.read_bytes()
    path.write_bytes(data.replace(b'"v":1', b'"v":2'))  # crc mismatch on the last line
    assert Journal(path).read() == [EVENTS[0]]
    assert Journal(path).repair() == len(data) - data.index(b"\n") - 1
    assert Journal(path).repair() == 0
    assert path.read_bytes() == data[: data.index(b"\n") + 1]


@pytest.mark.parametrize(
    "damage",
    [
        lambda line: line.replace(b'"seed":7', b'"seed":8'),  # crc mismatch
        lambda line: line[:10],  # cut short but newline kept
        lambda line: b"\xff\xfe garbage",  # not UTF-8 / JSON
        lambda line: b"",  # blank line
    ],
)
def test_corrupt_middle_line_raises_with_line_number(tmp_path: Path, damage) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    for event in EVENTS:
        journal.append(event)
    lines = path.read_bytes().split(b"\n")
    lines[0] = damage(lines[0])
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(StoreError) as info:
        Journal(path).read()
    message = str(info.value)
    assert f"journal {path} is damaged at line 1" in message
    assert "restore" in message and "munet check" in message and "\n" not in message
    with pytest.raises(StoreError, match="line 1"):
        Journal(path).append({"type": "more"})
    assert path.read_bytes() == b"\n".join(lines)  # nothing appended to a damaged journal


def test_corrupt_line_before_torn_tail_is_not_last(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    journal.append(EVENTS[0])
    journal.append(EVENTS[1])
    data = path.read_bytes().replace(b'"task":"cifar10"', b'"task":"cifar11"')
    path.write_bytes(data + b'{"crc":')
    with pytest.raises(StoreError, match="damaged at line 2"):
        Journal(path).read()


def test_single_write_call_per_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    calls: list[int] = []
    real_write = os.write

    def counting_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", counting_write)
    Journal(tmp_path / "j.jsonl").append(EVENTS[1])
    assert len(calls) == 1 and calls[0] == (tmp_path / "j.jsonl").stat().st_size


def test_a_second_created_event_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    Journal(path).append({"type": "created", "seed": 0})
    before = path.read_bytes()
    with pytest.raises(StoreError, match="second 'created' event is refused"):
        Journal(path).append({"type": "created", "seed": 1})
    assert path.read_bytes() == before
    Journal(path).append({"type": "generation"})
    assert [e["type"] for e in Journal(path).read()] == ["created", "generation"]


def test_created_is_written_with_o_excl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a racing creator makes the file between this writer's stat and its open
    import munet.store.journal as journal_module

    path = tmp_path / "journal.jsonl"
    Journal(path).append({"type": "created", "seed": 0})
    before = path.read_bytes()

    real_stat = os.stat

    def stat_missing(p: object, *args: object, **kwargs: object) -> os.stat_result:
        if Path(p) == path:  # type: ignore[arg-type]
            raise FileNotFoundError(p)
        return real_stat(p, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module.os, "stat", stat_missing)
    with pytest.raises(StoreError, match="second 'created' event is refused"):
        Journal(path).append({"type": "created", "seed": 1})
    monkeypatch.undo()
    assert path.read_bytes() == before
