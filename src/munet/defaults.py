"""Defaults shared by the command-line modules (``munet.cli``, ``munet.serve.cli``).

A leaf module (no imports), so both CLIs read it without importing each other and
``munet --help`` stays fast.
"""

from __future__ import annotations

#: The system directory of every command that takes ``--system``, when it is not given.
DEFAULT_SYSTEM = "./munet-system"
