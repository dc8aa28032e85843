"""The JSON encoding used by the journal and by :func:`munet.fileio.atomic.atomic_write_json`.

Decisions (shared by every JSON file the store writes):

* Finite floats round-trip exactly (Python writes the shortest repr that parses back to the
  same double).
* Non-finite floats are **encoded as the strings** ``"nan"``, ``"inf"`` and ``"-inf"`` (strict
  JSON has no literal for them). They are read back as those strings; use :func:`decode_float`
  where a number is expected.
* Tuples become lists. numpy-style scalars (anything registered as ``numbers.Integral`` /
  ``numbers.Real``) become ``int`` / ``float``.
* Dict keys must be ``str`` (json would silently turn ``1`` into ``"1"``, breaking round-trip).
* Anything else (tensors, arrays, sets, objects) raises :class:`~munet.errors.StoreError`
  naming where in the value it sits.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

from munet.errors import StoreError

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _encode_float(x: float) -> float | str:
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def encode_json_value(value: Any, where: str = "value") -> Any:
    """Return a JSON-safe copy of ``value`` (see module docstring for the rules).

    ``where`` names the value in error messages, e.g. ``"event"`` gives ``event.scores[3]``.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _encode_float(float(value))
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise StoreError(
                    f"{where} has a non-string key {key!r} ({type(key).__name__}); "
                    "JSON keys must be str, convert it with str() first"
                )
            out[key] = encode_json_value(item, f"{where}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [encode_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return _encode_float(float(value))
    raise StoreError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}, which cannot be "
        "stored as JSON; convert it to a plain int/float/str/list/dict first (e.g. .item())"
    )


def canonical_json(value: Any, where: str = "value") -> str:
    """One-line canonical JSON (sorted keys, no spaces, ASCII) of ``encode_json_value(value)``."""
    return json.dumps(
        encode_json_value(value, where),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


def decode_float(value: float | int | str) -> float:
    """Turn a stored number back into a float, accepting ``"nan"``, ``"inf"`` and ``"-inf"``."""
    if isinstance(value, bool):
        raise StoreError(f"expected a number, got the boolean {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in _NONFINITE:
        return _NONFINITE[value]
    raise StoreError(f"expected a number or 'nan'/'inf'/'-inf', got {value!r}")
