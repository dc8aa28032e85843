"""Crash-safe whole-file writes.

Each write goes to a temp file ``.tmp-<name>.<random>`` in the target's directory, is flushed
and fsynced, renamed over the target with :func:`os.replace` (atomic on POSIX), and then the
directory is fsynced so the rename itself is durable. A crash at any moment leaves either the
old or the new file, never a partial one; at worst a ``.tmp-*`` file is left behind, which
:func:`cleanup_temp_files` removes.

Linux/POSIX only.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from munet.errors import StoreError
from munet.fileio.jsoncodec import encode_json_value

TEMP_PREFIX = ".tmp-"

PathLike = str | os.PathLike[str]


def fsync_directory(directory: PathLike) -> None:
    """fsync a directory so that renames/creations/deletions inside it are durable."""
    fd = os.open(os.fspath(directory), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (one ``os.write`` call unless the kernel writes short)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _open_temp(directory: Path, name: str) -> tuple[int, Path]:
    for _ in range(100):
        tmp = directory / f"{TEMP_PREFIX}{name}.{secrets.token_hex(6)}"
        try:
            # Mode 0o666 is reduced by the umask, like a file created with open().
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise StoreError(f"could not create a temp file in {directory}; remove stale .tmp-* files")


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Atomically replace ``path`` with ``data`` (see module docstring).

    The parent directory must exist. OS failures (missing directory, permissions, disk full)
    raise :class:`~munet.errors.StoreError`; the old file, if any, is left untouched and the
    temp file is removed.
    """
    target = Path(path)
    directory = target.parent
    try:
        fd, tmp = _open_temp(directory, target.name)
    except OSError as err:
        raise StoreError(
            f"cannot write {target}: {err.strerror}; check that {directory} exists and is writable"
        ) from err
    try:
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise StoreError(
                f"cannot write {target}: {err.strerror or err}; the previous version is "
                "unchanged, check free disk space and permissions and retry"
            ) from err
        raise
    try:
        fsync_directory(directory)
    except OSError as err:
        raise StoreError(
            f"wrote {target} but could not fsync {directory}: {err.strerror}; "
            "the file system may not support durable renames"
        ) from err


def atomic_write_text(path: PathLike, text: str) -> None:
    """Atomically replace ``path`` with ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Atomically write ``obj`` as JSON (sorted keys, indent 1, trailing newline).

    ``obj`` is encoded with :func:`munet.fileio.jsoncodec.encode_json_value`: non-finite floats
    are written as the strings ``"nan"``/``"inf"``/``"-inf"``, non-JSON values raise
    :class:`~munet.errors.StoreError`.
    """
    encoded = encode_json_value(obj, Path(path).name)
    text = json.dumps(encoded, sort_keys=True, indent=1, ensure_ascii=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def cleanup_temp_files(directory: PathLike) -> list[Path]:
    """Remove leftover ``.tmp-*`` files (from interrupted writes) in ``directory``.

    Not recursive. Returns the removed paths (sorted). Call it only while holding the system
    lock, since another writer's in-flight temp file looks the same. A missing directory is
    treated as empty.
    """
    root = Path(directory)
    try:
        entries = sorted(root.iterdir())
    except FileNotFoundError:
        return []
    removed = []
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file() and not entry.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    if removed:
        fsync_directory(root)
    return removed
