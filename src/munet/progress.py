"""Progress and log output of long steps, shared by every layer (a leaf: imports no munet module).

The library logs to ``logging.getLogger("munet")`` and its children and never configures
logging itself; the ``munet`` command installs :class:`StderrHandler`. A long step (evolving,
pretraining a root, rendering or decoding a task's images on first use, re-evaluating in
``munet check``, drawing a report) reports through :class:`Progress`: a tqdm bar when stderr is
a terminal, else plain ``desc k/N, mm:ss elapsed, ETA mm:ss`` lines.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

Log = Callable[[str], None]

LOGGER = logging.getLogger("munet")


def clock(seconds: float) -> str:
    """``mm:ss``, or ``h:mm:ss`` from an hour on."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """``total`` steps of work named ``desc``.

    ``show`` forces the tqdm bar on (True) or off (False); by default the bar is on when stderr
    is a terminal and someone listens (``log`` is given or ``logger`` is enabled for INFO).
    Without the bar, :meth:`advance` writes ``desc k/N, elapsed, ETA`` lines at most every
    ``every`` seconds and at the end; lines go to ``log``, else to ``logger.info``.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        *,
        unit: str = "it",
        log: Log | None = None,
        logger: logging.Logger = LOGGER,
        show: bool | None = None,
        every: float = 10.0,
    ) -> None:
        self.total = max(0, int(total))
        self.desc = desc
        self.say: Log = log or logger.info
        self.every = every
        self.done = 0
        self.note = ""
        self.t0 = self.last = time.monotonic()
        listening = log is not None or logger.isEnabledFor(logging.INFO)
        if show is None:
            show = listening and sys.stderr.isatty()
        self.bar: Any = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(
                total=self.total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True
            )

    def status(self) -> str:
        """``k/N, mm:ss elapsed, ETA mm:ss``."""
        now = time.monotonic() - self.t0
        left = now / self.done * (self.total - self.done) if self.done else None
        eta = "--:--" if left is None else clock(left)
        return f"{self.done}/{self.total}, {clock(now)} elapsed, ETA {eta}"

    def advance(self, n: int = 1, note: str | None = None, line: str | None = None) -> None:
        """``n`` more steps done. ``note`` (e.g. the loss) goes beside the count until the next
        note; ``line`` is a message about the step, always written (with the count when there is
        no bar)."""
        self.done += n
        if note is not None:
            self.note = note
            if self.bar is not None:
                self.bar.set_postfix_str(note, refresh=False)
        if self.bar is not None:
            if line is not None:
                self.say(line)
            self.bar.update(n)
            return
        now = time.monotonic()
        if line is not None:
            self.say(f"{line}  [{self.status()}]")
            self.last = now
        elif self.done >= self.total or now - self.last >= self.every:
            self.say(f"{self.desc} {self.status()}" + (f" {self.note}" if self.note else ""))
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _Format(logging.Formatter):
    """INFO as the bare message (progress lines), other levels prefixed."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        if record.levelno == logging.INFO:
            return msg
        if record.levelno < logging.INFO:
            return f"debug [{record.name}] {msg}"
        return f"{record.levelname.lower()}: {msg}"


class StderrHandler(logging.Handler):
    """Writes records to the current ``sys.stderr`` (looked up per record, so redirections and
    pytest's capture see them), above any live tqdm bar rather than through it."""

    def __init__(self, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.setFormatter(_Format())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None and getattr(tqdm.tqdm, "_instances", None):
                tqdm.tqdm.write(msg, file=sys.stderr)
            else:
                sys.stderr.write(msg + "\n")
                sys.stderr.flush()
        except Exception:
            self.handleError(record)
