"""Where training runs: device resolution and CPU thread count."""

from __future__ import annotations

import os

from munet.errors import ConfigError


def resolve_device(name: str) -> str:
    """``auto`` is CUDA when a GPU is visible, else CPU; an explicit ``cuda`` needs a GPU."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA GPU is visible; use device=cpu")
    return name


def configure_threads(threads: int) -> int:
    """Set torch's CPU threads. 0 = auto: one thread on machines of two cores or fewer, where
    we measured a second OpenMP thread making small ViT matmuls ~10x slower, else torch's
    default. Returns the number in force."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    elif (os.cpu_count() or 1) <= 2:
        torch.set_num_threads(1)
    return torch.get_num_threads()
