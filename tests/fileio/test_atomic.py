"""Crash-safety of atomic whole-file writes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from munet.errors import StoreError
from munet.fileio.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cleanup_temp_files,
)


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".tmp-"))


def test_write_bytes_and_text_replace_content(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    atomic_write_bytes(target, b"old")
    assert target.read_bytes() == b"old"
    atomic_write_bytes(target, b"new content")
    assert target.read_bytes() == b"new content"
    atomic_write_text(tmp_path / "t.txt", "héllo\n")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert _temps(tmp_path) == []


def test_new_file_respects_umask(tmp_path: Path) -> None:
    target = tmp_path / "f"
    atomic_write_bytes(target, b"x")
    old = os.umask(0)
    os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o666 & ~old


def test_failed_replace_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"v": 1})
    before = target.read_bytes()

    def boom(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(StoreError, match=r"cannot write .*state\.json.*unchanged"):
        atomic_write_json(target, {"v": 2, "big": "x" * 10_000})
    assert target.read_bytes() == before
    assert _temps(tmp_path) == []


def test_interrupt_during_write_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data"
    atomic_write_bytes(target, b"old")

    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(target, b"new-but-never-synced")
    assert target.read_bytes() == b"old"
    assert _temps(tmp_path) == []


def test_process_death_before_rename_leaves_old_file_and_cleanable_temp(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    atomic_write_bytes(target, b"old")
    script = (
        "import os, sys\n"
        "from munet.fileio import atomic\n"
        "os.replace = lambda *a: os._exit(3)\n"  # die hard right before the rename
        "atomic.atomic_write_bytes(sys.argv[1], b'new' * 1000)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], timeout=60)
    assert proc.returncode == 3
    assert target.read_bytes() == b"old"
    leftovers = _temps(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-data.bin.")
    removed = cleanup_temp_files(tmp_path)
    assert [p.name for p in removed] == leftovers
    assert _temps(tmp_path) == []
    assert target.read_bytes() == b"old"


def test_cleanup_only_touches_tmp_files(tmp_path: Path) -> None:
    (tmp_path / ".tmp-a.123").write_bytes(b"partial")
    (tmp_path / "keep.tmp-").write_bytes(b"x")
    (tmp_path / "journal.jsonl").write_bytes(b"x")
    assert [p.name for p in cleanup_temp_files(tmp_path)] == [".tmp-a.123"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.jsonl", "keep.tmp-"]
    assert cleanup_temp_files(tmp_path / "missing") == []


def test_missing_directory_is_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="missing"):
        atomic_write_bytes(tmp_path / "missing" / "f", b"x")


def test_json_format_and_float_encoding(tmp_path: Path) -> None:
    target = tmp_path / "s.json"
    atomic_write_json(target, {"b": 0.1, "a": [1, (2, 3)], "c": math.inf, "d": math.nan})
    text = target.read_text()
    assert text == (
        '{\n "a": [\n  1,\n  [\n   2,\n   3\n  ]\n ],\n "b": 0.1,\n "c": "inf",\n "d": "nan"\n}\n'
    )
    assert json.loads(text)["b"] == 0.1


def test_json_rejects_unserializable(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"s\.json\.x\[1\] is a builtins\.set"):
        atomic_write_json(tmp_path / "s.json", {"x": [1, {2}]})
    with pytest.raises(StoreError, match="non-string key 1"):
        atomic_write_json(tmp_path / "s.json", {1: 2})
    assert not (tmp_path / "s.json").exists()
