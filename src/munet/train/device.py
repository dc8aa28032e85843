"""Where training runs: device resolution and CPU thread count."""

from __future__ import annotations

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
    """Set torch's CPU threads; 0 = auto: torch's default (one per core). On a quiet 2-core
    machine two threads ran the default evolve 1.5x faster than one, with identical results;
    on cores shared with other CPU-heavy jobs OpenMP threads contend (we measured small
    matmuls ~10x slower), so set 1 there. Returns the number in force."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()
