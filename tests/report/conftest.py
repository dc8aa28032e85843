"""A second tiny system, a baseline with adapters, to report next to ``two_task_system``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny import tiny_args


@pytest.fixture(scope="session")
def adapter_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """digits then glyph_digits with the adapters:4 baseline (tiny config, vit_micro)."""
    from munet.cli import main

    d = tmp_path_factory.mktemp("baseline") / "adapters"
    assert main(tiny_args(d, "builtin:digits,builtin:glyph_digits", "--method", "adapters:4")) == 0
    return d
