"""The three learning-rate schedules of spec §5.2 (shared by candidates and root pretraining)."""

from __future__ import annotations

import math

import pytest

from munet.system.schedule import learning_rate


def hp(kind, ratio=0.1, lr=0.2):
    return {"opt_lr": lr, "opt_lr_schedule": kind, "opt_lr_warmup_ratio": ratio}


def test_constant_is_half_the_peak_at_every_step():
    assert {learning_rate(t, hp("constant"), 100, 10) for t in range(100)} == {0.1}


def test_cosine_warms_up_linearly_from_a_hundredth_then_decays_to_zero():
    h = hp("cosine", ratio=0.1)
    assert learning_rate(0, h, 100, 10) == pytest.approx(0.002)
    assert learning_rate(5, h, 100, 10) == pytest.approx(0.002 + (0.2 - 0.002) * 0.5)
    assert learning_rate(10, h, 100, 10) == pytest.approx(0.2)  # end of warm-up: the peak
    assert learning_rate(55, h, 100, 10) == pytest.approx(0.1)  # half-way through the decay
    assert learning_rate(100, h, 100, 10) == pytest.approx(0.0, abs=1e-12)
    decay = [learning_rate(t, h, 100, 10) for t in range(10, 101)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_restarts_repeat_the_warm_up_and_decay_every_interval():
    h = hp("restarts", ratio=0.2)
    one = [learning_rate(t, h, 100, 20) for t in range(20)]
    assert [learning_rate(t, h, 100, 20) for t in range(40, 60)] == one
    assert one[0] == pytest.approx(0.002) and one[4] == pytest.approx(0.2)
    assert one[12] == pytest.approx(0.2 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_an_unknown_schedule_names_the_known_ones():
    with pytest.raises(ValueError, match="constant, cosine, restarts"):
        learning_rate(0, hp("linear"), 10, 5)
