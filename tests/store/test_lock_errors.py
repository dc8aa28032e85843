"""Writing the lock file can fail (a full disk): one StoreError, and the lock is free again."""

from __future__ import annotations

import errno

import pytest

import munet.store.lock as lockmod
from munet.errors import StoreError


def test_enospc_while_writing_the_lock_is_one_line_and_releases_it(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(lockmod, "write_all", full)
    with pytest.raises(StoreError, match="cannot write lock file .*No space left on device") as err:
        lockmod.SystemLock(tmp_path).acquire()
    assert "\n" not in str(err.value)
    monkeypatch.undo()
    with lockmod.SystemLock(tmp_path) as lock:  # the failed attempt left no flock behind
        assert lock.held
