"""Fixtures of the serving tests: the shared tiny evolved system and a synthetic one."""

from __future__ import annotations

from pathlib import Path

import pytest

from munet.system.arch import RootArch

#: The dimensions of the builtin ``vit_micro`` root.
MICRO = RootArch(embed_dim=48, depth=2, num_heads=3, mlp_hidden_dim=96, patch_size=8, image_size=32)


@pytest.fixture(scope="session")
def evolved(two_task_system: Path):
    """The tiny evolved system (digits, glyph_digits; both gray) opened for inference."""
    import munet

    return munet.load(two_task_system)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four tasks on one random root: alpha shares every frozen component, beta has a private
    top block and norm, gamma a residual adapter before block 1, delta runs at 16 px."""
    from munet.serve.synthetic import make_synthetic_system

    return make_synthetic_system(
        tmp_path_factory.mktemp("serve") / "synthetic",
        MICRO,
        {"alpha": 4, "beta": 3, "gamma": 5, "delta": 2},
        private_layers={"beta": 1},
        adapter_layers={"gamma": [1]},
        image_size={"delta": 16},
    )


@pytest.fixture(scope="session")
def synthetic(synthetic_dir: Path):
    import munet

    return munet.load(synthetic_dir)
