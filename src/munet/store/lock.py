"""Exclusive lock on a system directory: ``<dir>/lock`` held with ``fcntl.flock``.

The lock belongs to the open file description, so the kernel releases it when the holder
exits or dies (even on SIGKILL); a stale lock file left on disk is harmless. While held, the
file contains ``{"pid": ..., "host": ..., "since": <ISO-8601 UTC>}`` so that a second writer
can be told who holds it. Linux/POSIX only. Not re-entrant: a second ``SystemLock`` on the
same directory fails even within the same process. Note that ``flock`` is inherited across
``fork``: a forked child that outlives its parent keeps the lock held.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from munet.errors import StoreError
from munet.fileio.atomic import PathLike, write_all

LOCK_NAME = "lock"


class SystemLock:
    """Context manager holding ``<directory>/lock`` exclusively (non-blocking).

    ``with SystemLock(system_dir): ...`` raises :class:`~munet.errors.StoreError` at entry if
    another process (or another ``SystemLock`` object) holds the lock, naming its pid, host
    and start time.
    """

    def __init__(self, directory: PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"SystemLock({str(self.directory)!r}, held={self.held})"

    @property
    def held(self) -> bool:
        """Whether this object currently holds the lock."""
        return self._fd is not None

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return f"pid {int(info['pid'])} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            # The holder may be between taking the lock and writing its details.
            return "another process (owner details not yet written)"

    def acquire(self) -> None:
        """Take the lock or raise :class:`~munet.errors.StoreError` if it is held."""
        if self._fd is not None:
            raise StoreError(f"lock {self.path} is already held by this SystemLock object")
        if not self.directory.is_dir():
            raise StoreError(
                f"system directory {self.directory} does not exist; create it or fix the path"
            )
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as err:
            raise StoreError(
                f"cannot open lock file {self.path}: {err.strerror}; check permissions"
            ) from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StoreError(
                    f"system {self.directory} is in use by {self._holder()}; wait for it or stop it"
                ) from None
            raise StoreError(f"cannot lock {self.path}: {err.strerror}") from err
        try:
            since = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": since}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            write_all(fd, (json.dumps(info, sort_keys=True) + "\n").encode("utf-8"))
        except OSError as err:  # e.g. ENOSPC, EDQUOT, EIO
            os.close(fd)  # closing releases the flock
            raise StoreError(
                f"cannot write lock file {self.path}: {err.strerror or err}; free disk space or "
                "check the file system"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        """Release the lock (no-op if not held). The lock file itself is kept."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # clear owner details before unlocking
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> SystemLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
