"""munet: evolve a pretrained ViT into one multitask system (muNet, Gesmundo & Dean 2022)."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # lazy, so `import munet` (and `munet --help`) does not import torch
    if name == "load":
        from munet.serve.system import load

        return load
    raise AttributeError(f"module 'munet' has no attribute {name!r}")
