"""munet: evolve a pretrained ViT into one multitask system (muNet, Gesmundo & Dean 2022).

The public API, imported on first use so that ``import munet`` (and ``munet --help``) does not
import torch::

    munet.evolve, munet.add_tasks, munet.check, munet.report, munet.export, munet.load,
    munet.Config and the typed events of ``munet.evolve(callbacks=[...])``.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

# a library logs, its application decides where to: silent unless logging is configured
logging.getLogger("munet").addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from munet.api import add_tasks, check, evolve, export, load, report
    from munet.config import Config
    from munet.events import CandidateTrained, IterationEnded, RunEnded

_HOMES = {
    "evolve": "munet.api",
    "add_tasks": "munet.api",
    "check": "munet.api",
    "report": "munet.api",
    "export": "munet.api",
    "load": "munet.api",
    "Config": "munet.config",
    "CandidateTrained": "munet.events",
    "IterationEnded": "munet.events",
    "RunEnded": "munet.events",
}

__all__ = [
    "CandidateTrained",
    "Config",
    "IterationEnded",
    "RunEnded",
    "__version__",
    "add_tasks",
    "check",
    "evolve",
    "export",
    "load",
    "report",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        # one source: the version in pyproject.toml, as installed
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("munet")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "0+unknown"
        globals()["__version__"] = found
        return found
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'munet' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
