"""Learning-rate schedules (spec §5.2), shared by candidate training and root pretraining."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from munet.system.hparams import peak_lr

SCHEDULES = ("constant", "cosine", "restarts")


def learning_rate(step: int, hp: Mapping[str, Any], total: int, interval: int) -> float:
    """The spec's schedules: cosine with warm-up, SGDR restarts per interval, or constant ½.

    ``hp`` holds the peak (``opt_lr``, or ``opt_adamw_lr`` under AdamW: see ``peak_lr``),
    ``opt_lr_schedule`` and ``opt_lr_warmup_ratio``. Warm-up
    rises linearly from peak/100 to the peak over ``ratio × length`` steps, where length is
    ``total`` for cosine and ``interval`` for restarts; cosine then decays to 0 at its end.
    """
    peak = peak_lr(hp)
    kind = hp["opt_lr_schedule"]
    if kind == "constant":
        return peak * 0.5
    if kind == "cosine":
        length, t = total, step
    elif kind == "restarts":
        length, t = interval, step % interval
    else:
        raise ValueError(f"unknown learning-rate schedule {kind!r}; known: {', '.join(SCHEDULES)}")
    warm = max(1, int(float(hp["opt_lr_warmup_ratio"]) * length))
    if t < warm:
        return peak / 100 + (peak - peak / 100) * t / warm
    frac = min(1.0, (t - warm) / max(1, length - warm))
    return peak * 0.5 * (1 + math.cos(math.pi * frac))
