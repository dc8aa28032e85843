"""bench/overhead.py's arithmetic: profile rows by function and file, candidate seconds."""

from __future__ import annotations

import cProfile
import pstats
import time

from tiny import bench_module


def load():
    return bench_module("overhead")


def slow(seconds: float) -> None:
    time.sleep(seconds)


def test_cumulative_time_of_a_named_function_in_a_named_file(tmp_path):
    o = load()
    prof = cProfile.Profile()
    prof.enable()
    slow(0.05)
    slow(0.05)
    prof.disable()
    stats = pstats.Stats(prof)
    here = "tests/test_bench_overhead.py"
    assert 0.1 <= o.cumulative(stats, here, "slow") < 1.0
    assert o.cumulative(stats, "other/file.py", "slow") == 0.0
    assert o.cumulative(stats, here, "missing") == 0.0


def test_candidate_seconds_sum_the_csv_column_and_read_empty_cells_as_zero(tmp_path):
    o = load()
    (tmp_path / "candidates.csv").write_text("task,seconds,images\na,1.5,10\nb,,0\nc,2.25,5\n")
    assert o.candidate_seconds(tmp_path) == 3.75
