"""Append-only JSON-lines event log with a CRC per line.

Each line is ``{"crc": <crc32>, "event": {...}}`` followed by ``\\n``, where the CRC is the
zlib CRC-32 of the event's canonical JSON (:func:`munet.fileio.jsoncodec.canonical_json`).
Lines are written with a single ``write`` on an ``O_APPEND`` descriptor and fsynced before
:meth:`Journal.append` returns, so an acknowledged event survives a crash.

A crash mid-append can only damage the *last* line. :meth:`Journal.read` drops a torn or
corrupt last line (no trailing newline, bad JSON, CRC mismatch) with a logged warning and
leaves the file alone; the next :meth:`Journal.append` (or :meth:`Journal.repair`) truncates it
so new lines never glue onto it. A damaged line anywhere else means real corruption and raises
:class:`~munet.errors.StoreError`.

Events are JSON dicts with a ``"type"`` string; the journal interprets one type only: a
``created`` event is the first line of a new file, written with ``O_EXCL``, so two writers
racing to create a system cannot both succeed and a second ``created`` is refused. Values
follow :mod:`munet.fileio.jsoncodec`: finite floats round-trip exactly, **non-finite floats are
stored (and read back) as the strings** ``"nan"``, ``"inf"``, ``"-inf"``; tuples read back as
lists.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any

from munet.errors import StoreError
from munet.fileio.atomic import PathLike, fsync_directory, write_all
from munet.fileio.jsoncodec import canonical_json

log = logging.getLogger(__name__)

#: The event type that starts a journal; it may only be the first line of a new file.
CREATED = "created"


def _crc(canonical: str) -> int:
    return zlib.crc32(canonical.encode("utf-8")) & 0xFFFFFFFF


def encode_line(event: dict[str, Any]) -> bytes:
    """Return the journal line (with trailing newline) for ``event``; validates it first."""
    if not isinstance(event, dict):
        raise StoreError(f"journal event must be a dict, got {type(event).__name__}")
    if not isinstance(event.get("type"), str) or not event["type"]:
        raise StoreError(f"journal event needs a non-empty string 'type' key, got {event!r:.200}")
    canonical = canonical_json(event, "event")
    return f'{{"crc":{_crc(canonical)},"event":{canonical}}}\n'.encode("ascii")


def _decode_line(raw: bytes) -> tuple[dict[str, Any] | None, str]:
    """Parse one line (without newline). Returns ``(event, "")`` or ``(None, reason)``."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        return None, f"not valid JSON ({err})"
    if not isinstance(record, dict) or set(record) != {"crc", "event"}:
        return None, "not a {crc, event} record"
    crc, event = record["crc"], record["event"]
    if not isinstance(event, dict) or not isinstance(crc, int) or isinstance(crc, bool):
        return None, "malformed crc or event"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return None, "event without a string 'type'"
    actual = _crc(canonical_json(event, "event"))
    if actual != crc:
        return None, f"crc mismatch (stored {crc}, computed {actual})"
    return event, ""


class Journal:
    """An append-only, CRC-checked JSON-lines event log stored at ``path``.

    The parent directory must exist; the file is created by the first :meth:`append`. Not safe
    for concurrent writers -- hold :class:`~munet.store.lock.SystemLock` while appending.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = Path(path)
        # Size of the file known to end in a complete, valid line; None = not checked yet.
        self._clean_size: int | None = None

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r})"

    def _scan(self) -> tuple[list[dict[str, Any]], int, int, str]:
        """Return ``(events, valid_len, file_len, problem)`` for the file on disk.

        ``valid_len`` is the byte length of the well-formed prefix; ``problem`` describes the
        dropped last line (empty if none). Raises StoreError for damage before the last line.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0, 0, ""
        except OSError as err:
            raise StoreError(f"cannot read journal {self.path}: {err.strerror}") from err
        lines = data.split(b"\n")
        torn_tail = lines.pop()  # b"" when the file ends with a newline
        events: list[dict[str, Any]] = []
        offset = 0
        problem = ""
        for index, raw in enumerate(lines):
            event, reason = _decode_line(raw)
            if event is None:
                is_last = index == len(lines) - 1 and not torn_tail
                if not is_last:
                    raise StoreError(
                        f"journal {self.path} is damaged at line {index + 1} ({reason}); "
                        "restore the system directory from backup or run `munet check`"
                    )
                problem = f"line {index + 1} is corrupt ({reason})"
                break
            events.append(event)
            offset += len(raw) + 1
        if torn_tail:
            problem = f"line {len(lines) + 1} is torn (no trailing newline)"
        return events, offset, len(data), problem

    def read(self) -> list[dict[str, Any]]:
        """Return all events in order (``[]`` for a missing file). Never modifies the file.

        A torn/corrupt last line is dropped with a warning; damage elsewhere raises
        :class:`~munet.errors.StoreError` naming the file and the 1-based line number.
        """
        events, valid_len, file_len, problem = self._scan()
        if problem:
            log.warning(
                "journal %s: dropping %s, probably from an interrupted write; "
                "it will be truncated on the next append",
                self.path,
                problem,
            )
        else:
            self._clean_size = file_len
        return events

    def repair(self) -> int:
        """Truncate a torn/corrupt last line, if any. Returns the number of bytes removed."""
        _events, valid_len, file_len, problem = self._scan()
        if valid_len < file_len:
            log.warning(
                "journal %s: truncating %s (%d bytes)", self.path, problem, file_len - valid_len
            )
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.ftruncate(fd, valid_len)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as err:
                raise StoreError(
                    f"cannot repair journal {self.path}: {err.strerror}; check permissions"
                ) from err
        self._clean_size = valid_len
        return file_len - valid_len

    def append(self, event: dict[str, Any]) -> None:
        """Durably append one event (a dict with a string ``"type"``).

        Returns after the line is fsynced. Repairs a torn last line first. Raises
        :class:`~munet.errors.StoreError` for an invalid event (nothing is written) or a
        journal damaged before its last line.
        """
        line = encode_line(event)
        creating = event["type"] == CREATED
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            size = None
        if creating and size is not None:
            raise self._already_created()
        if size is not None and size != self._clean_size:
            self.repair()
        # a new file starts with the one 'created' event: O_EXCL makes a racing creator fail
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        if creating:
            flags |= os.O_EXCL
        try:
            try:
                fd = os.open(self.path, flags, 0o666)
            except FileExistsError:
                raise self._already_created() from None
            try:
                write_all(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if size is None:
                fsync_directory(self.path.parent)
        except OSError as err:
            self._clean_size = None  # a partial line may have been written; re-check next time
            raise StoreError(
                f"cannot append to journal {self.path}: {err.strerror}; "
                "check that its directory exists, is writable and has free space"
            ) from err
        self._clean_size = (size or 0) + len(line)

    def _already_created(self) -> StoreError:
        return StoreError(
            f"journal {self.path} already exists, so a second 'created' event is refused; "
            "resume that system or use a new --system directory"
        )
