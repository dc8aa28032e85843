"""Shared fixtures: a tiny evolve configuration and systems built with it (module-cached)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny import tiny_args

# Every test shares one data/root cache so rendering and root pretraining happen once per run.
os.environ.setdefault(
    "MUNET_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache-test")
)


@pytest.fixture(scope="session")
def two_task_system(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny two-task system evolved through the CLI (digits, then glyph_digits)."""
    from munet.cli import main

    d = tmp_path_factory.mktemp("e2e") / "system"
    assert main(tiny_args(d, "builtin:digits,builtin:glyph_digits")) == 0
    return d
