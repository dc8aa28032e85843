"""SystemLock against a real second process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from munet.errors import StoreError
from munet.store.lock import SystemLock

HOLDER = (
    "import sys\n"
    "from munet.store.lock import SystemLock\n"
    "with SystemLock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    sys.stdin.readline()\n"  # hold until the parent writes a line or closes stdin
)


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_second_process_is_refused_with_pid(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(StoreError) as info:
        with SystemLock(tmp_path):
            pass
    message = str(info.value)
    assert message.startswith(f"system {tmp_path} is in use by pid {holder.pid} on ")
    assert socket.gethostname() in message and " since 20" in message
    assert message.endswith("; wait for it or stop it")
    info_on_disk = json.loads((tmp_path / "lock").read_text())
    assert info_on_disk["pid"] == holder.pid

    assert holder.stdin is not None
    holder.stdin.write("done\n")
    holder.stdin.close()
    assert holder.wait(timeout=30) == 0
    with SystemLock(tmp_path) as lock:  # released on normal exit
        assert lock.held
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    assert not lock.held
    assert (tmp_path / "lock").read_text() == ""


def test_lock_released_when_holder_is_killed(tmp_path: Path, holder: subprocess.Popen[str]) -> None:
    with pytest.raises(StoreError, match=f"pid {holder.pid}"):
        SystemLock(tmp_path).acquire()
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    lock = SystemLock(tmp_path)
    lock.acquire()  # stale lock file content does not matter: flock died with the process
    try:
        assert json.loads((tmp_path / "lock").read_text())["pid"] == os.getpid()
    finally:
        lock.release()


def test_same_process_second_lock_refused_and_release_is_idempotent(tmp_path: Path) -> None:
    with SystemLock(tmp_path):
        with pytest.raises(StoreError, match=f"in use by pid {os.getpid()}"):
            SystemLock(tmp_path).acquire()
    lock = SystemLock(tmp_path)
    lock.release()  # not held: no-op
    with lock:
        with pytest.raises(StoreError, match="already held"):
            lock.acquire()
    lock.release()


def test_released_on_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with SystemLock(tmp_path):
            raise RuntimeError("boom")
    with SystemLock(tmp_path):
        pass


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        SystemLock(tmp_path / "nope").acquire()
