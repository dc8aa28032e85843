"""Use an evolved system: Python API, mixed-task batches, export and HTTP serving.

``munet.serve.load(DIR)`` (also ``munet.load``) opens a system read-only; ``load_exported``
rebuilds one exported task model; ``create_app`` (needs the ``serve`` extra) is the HTTP app.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MultitaskSystem", "load", "load_exported", "export_task", "create_app"]

_WHERE = {
    "MultitaskSystem": "munet.serve.system",
    "load": "munet.serve.system",
    "load_exported": "munet.serve.export",
    "export_task": "munet.serve.export",
    "create_app": "munet.serve.app",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'munet.serve' has no attribute {name!r}")
