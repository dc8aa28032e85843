"""Deterministic random streams keyed by stable names (never the global RNG state)."""

from __future__ import annotations

import hashlib
import json

import numpy as np


def derive_seed(*keys: object) -> int:
    """A 63-bit seed from any JSON-able keys, e.g. (seed, task, iteration, candidate, purpose)."""
    blob = json.dumps(keys, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def rng_for(*keys: object) -> np.random.Generator:
    """A numpy Generator seeded from stable keys."""
    return np.random.Generator(np.random.PCG64(derive_seed(*keys)))
