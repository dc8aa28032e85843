"""Errors of the serving layer (user mistakes, printed in one line by the CLI)."""

from __future__ import annotations

from munet.errors import MunetError


class ImageError(MunetError):
    """An input is not a usable image: unreadable, wrong type, shape, dtype or value range."""


class ExportError(MunetError):
    """An export cannot be written or read back (bad format, missing file, failed check)."""


class ImageTooLargeError(ImageError):
    """An image decodes to more pixels than allowed."""
