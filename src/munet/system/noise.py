"""Acceptance beyond validation noise (beyond the paper: ``accept_z``).

The spec accepts a child whose score beats its parent's by any amount. On a small validation
split one image is a large step (0.42 points of 240), and a search that trains many children
accepts some whose only advantage is which validation images they happened to get right: their
validation accuracy rises while their test accuracy falls. This module is the paired test that
tells the two apart.

A child and its parent are scored on the same validation examples, so their difference is a
sign test on the examples where they disagree: the child gets ``w`` right that the parent got
wrong and loses ``l`` the other way. Without a real difference ``w - l`` has standard deviation
``sqrt(w + l)``; in accuracy that is ``sqrt(w + l) / n`` over ``n`` examples. A path must beat
its rival's score with its quality lowered by ``z`` of those standard errors.

Which examples a path got right travels as a compact string (:func:`pack`): it is kept in the
path's metrics and in its journal record, so a resumed run judges exactly as the first did.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: The metrics key (and journal field) that holds a path's packed validation hits.
HITS_KEY = "val_hits"


def pack(hits: Sequence[bool] | np.ndarray) -> str:
    """``"<n>:<hex>"``: which of ``n`` validation examples were classified correctly."""
    bits = np.asarray(hits, dtype=bool)
    return f"{bits.size}:{np.packbits(bits).tobytes().hex()}"


def unpack(packed: str) -> np.ndarray:
    """The boolean array :func:`pack` encoded. Raises ValueError for a malformed string."""
    n_text, _, hex_text = packed.partition(":")
    n = int(n_text)
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(hex_text), dtype=np.uint8))
    if n < 0 or bits.size < n or bits.size - n >= 8:
        raise ValueError(f"packed validation hits {packed[:24]!r} do not hold {n} examples")
    return bits[:n].astype(bool)


def paired_se(hits: str | None, rival_hits: str | None) -> float | None:
    """Standard error, in accuracy, of the difference between two paths scored on the same
    examples: ``sqrt(w + l) / n``. None when either lacks hits or they cover different
    examples (a path from an older system, another split): no paired test is possible."""
    if hits is None or rival_hits is None:
        return None
    a, b = unpack(hits), unpack(rival_hits)
    if a.size != b.size or a.size == 0:
        return None
    disagree = int(np.count_nonzero(a != b))
    return math.sqrt(disagree) / a.size


def margin(hits: str | None, rival_hits: str | None, z: float) -> float:
    """How much quality a path gives up before it is compared with a rival's score: ``z``
    paired standard errors, or 0 when ``z`` is 0 or no paired test is possible."""
    if z <= 0.0:
        return 0.0
    se = paired_se(hits, rival_hits)
    return 0.0 if se is None else z * se
