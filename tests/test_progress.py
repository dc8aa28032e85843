"""The shared progress helper and the CLI's stderr handler (munet.progress)."""

from __future__ import annotations

import logging
import sys

import pytest

from munet import progress
from munet.progress import Progress, StderrHandler, clock


class Clock:
    """A settable time.monotonic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake_time(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress.time, "monotonic", c)
    return c


def test_clock_is_mm_ss_then_h_mm_ss():
    assert clock(0) == "00:00"
    assert clock(65.4) == "01:05"
    assert clock(3599) == "59:59"
    assert clock(3725) == "1:02:05"


def test_piped_lines_count_k_of_n_with_an_eta_at_most_every_interval(fake_time):
    lines: list[str] = []
    count = Progress(10, "render digits", unit="img", log=lines.append, show=False, every=30)
    fake_time.now += 20
    count.advance(2)  # 20 s for 2 of 10: 80 s to go, but only 20 s since the start
    assert lines == []
    fake_time.now += 20
    count.advance(2, note="loss 0.500")
    assert lines == ["render digits 4/10, 00:40 elapsed, ETA 01:00 loss 0.500"]
    fake_time.now += 1
    count.advance(5)  # within 30 s of the last line: quiet
    assert len(lines) == 1
    count.advance(1)  # the end is always reported, with the last note
    assert lines[-1] == "render digits 10/10, 00:41 elapsed, ETA 00:00 loss 0.500"


def test_a_step_line_carries_the_count_when_piped(fake_time):
    lines: list[str] = []
    count = Progress(3, "evolve", log=lines.append, show=False)
    assert count.status() == "0/3, 00:00 elapsed, ETA --:--"
    fake_time.now += 6
    count.advance(line="  cand 0 accepted")
    assert lines == ["  cand 0 accepted  [1/3, 00:06 elapsed, ETA 00:12]"]


def test_the_bar_goes_to_stderr_and_step_lines_stay_bare(capsys):
    lines: list[str] = []
    with Progress(3, "evolve", unit="cand", log=lines.append, show=True) as count:
        for i in range(3):
            count.advance(line=f"cand {i}")
    assert lines == ["cand 0", "cand 1", "cand 2"]  # the bar shows the count
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "evolve" in captured.err and "3/3" in captured.err


def test_a_terminal_gets_a_bar_only_when_someone_listens(monkeypatch, capsys, caplog):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    logger = logging.getLogger("munet.test_progress")
    caplog.set_level(logging.WARNING, logger="munet")
    with Progress(2, "quiet", logger=logger) as count:
        assert count.bar is None
        count.advance(2)
    assert capsys.readouterr().err == "" and caplog.records == []
    caplog.set_level(logging.INFO, logger="munet")
    with Progress(2, "loud", logger=logger) as count:
        assert count.bar is not None
        count.advance(2)
    assert "loud" in capsys.readouterr().err
    assert caplog.records == []  # the bar replaces the plain lines


def test_without_a_terminal_lines_go_to_the_logger(caplog):
    caplog.set_level(logging.INFO, logger="munet")
    logger = logging.getLogger("munet.test_progress")
    with Progress(2, "decode x", logger=logger) as count:
        assert count.bar is None  # pytest's captured stderr is no terminal
        count.advance(2)
    (record,) = caplog.records
    assert record.name == "munet.test_progress" and record.levelno == logging.INFO
    assert record.getMessage().startswith("decode x 2/2, ") and "ETA 00:00" in record.getMessage()


def test_stderr_handler_prefixes_levels_and_writes_to_the_current_stderr(capsys):
    logger = logging.getLogger("munet.test_handler")
    handler = StderrHandler()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("a detail")
        logger.info("a progress line")
        logger.warning("careful")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "debug [munet.test_handler] a detail",
        "a progress line",
        "warning: careful",
    ]


def test_the_package_stays_silent_until_logging_is_configured():
    handlers = logging.getLogger("munet").handlers  # `munet` is imported: its NullHandler is on
    assert any(isinstance(h, logging.NullHandler) for h in handlers)
    assert not any(isinstance(h, StderrHandler) for h in handlers)


def test_the_seed_screen_line_names_the_task_path_it_was_held_against():
    from types import SimpleNamespace

    from munet.report.progress import ProgressPrinter

    lines: list[str] = []
    settings = SimpleNamespace(
        task_iterations=2, task_schedule="round_robin", candidates_per_iteration=3
    )
    printer = ProgressPrinter(
        SimpleNamespace(iterations_done={}), settings, ["t"], lines.append, False
    )
    printer(
        "seeds_screened",
        task="t",
        iteration=1,
        scores={4: 0.8, 0: 0.5},
        kept=[],
        incumbent=(7, 0.9),
    )
    printer(
        "seeds_screened", task="t", iteration=0, scores={4: 0.8, 0: 0.5}, kept=[4], incumbent=None
    )
    assert lines == [
        "  seed screen (linear probe, val acc): 4: 0.800, 0: 0.500; own path 7: 0.900; training []",
        "  seed screen (linear probe, val acc): 4: 0.800, 0: 0.500; training [4]",
    ]


def test_a_candidate_line_shows_the_margin_it_was_judged_with(caplog):
    from dataclasses import replace
    from types import SimpleNamespace

    from munet.report.progress import ProgressPrinter
    from munet.system.record import CandidateRecord

    lines: list[str] = []
    settings = SimpleNamespace(
        task_iterations=1, task_schedule="round_robin", candidates_per_iteration=2
    )
    printer = ProgressPrinter(
        SimpleNamespace(iterations_done={}), settings, ["t"], lines.append, False
    )
    rec = CandidateRecord(
        "t", 0, 0, 1, 9, 4, "t", False, [], {}, [], [], quality=0.52, score=0.52, baseline=0.5
    )
    with caplog.at_level(logging.INFO, logger="munet"):
        printer("candidate", record=rec)
        printer("candidate", record=replace(rec, margin=0.0241))
    said = [r.getMessage() for r in caplog.records] + lines
    assert any("score 0.5200 rejected [0.0s] no mutation" in s for s in said), said
    assert any("score 0.5200 rejected (margin 0.0241) [0.0s]" in s for s in said), said
