"""Errors of the serving layer, defined in :mod:`munet.errors` (re-exported here)."""

from __future__ import annotations

from munet.errors import ExportError, ImageError, ImageTooLargeError

__all__ = ["ExportError", "ImageError", "ImageTooLargeError"]
