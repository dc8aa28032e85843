"""Durable storage primitives for a muNet system directory.

* :mod:`munet.store.atomic` -- crash-safe whole-file writes (temp file + fsync + rename).
* :mod:`munet.store.journal` -- append-only, CRC-checked JSON-lines event log.
* :mod:`munet.store.blobs` -- write-once safetensors files, one per component.
* :mod:`munet.store.lock` -- exclusive, process-death-safe lock on a system directory.
* :mod:`munet.store.jsoncodec` -- the JSON encoding shared by the journal and JSON files.

``BlobStore`` is imported lazily so that importing the light-weight primitives does not
import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from munet.store.atomic import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    cleanup_temp_files,
)
from munet.store.journal import Journal
from munet.store.jsoncodec import canonical_json, decode_float, encode_json_value
from munet.store.lock import SystemLock

if TYPE_CHECKING:
    from munet.store.blobs import BlobStore

__all__ = [
    "BlobStore",
    "Journal",
    "SystemLock",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "canonical_json",
    "cleanup_temp_files",
    "decode_float",
    "encode_json_value",
]


def __getattr__(name: str) -> Any:
    if name == "BlobStore":
        from munet.store.blobs import BlobStore

        return BlobStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
