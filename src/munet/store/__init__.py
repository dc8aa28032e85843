"""Durable storage primitives for a muNet system directory.

* :mod:`munet.store.atomic` -- crash-safe whole-file writes (temp file + fsync + rename).
* :mod:`munet.store.journal` -- append-only, CRC-checked JSON-lines event log.
* :mod:`munet.store.blobs` -- write-once safetensors files, one per component.
* :mod:`munet.store.lock` -- exclusive, process-death-safe lock on a system directory.
* :mod:`munet.store.jsoncodec` -- the JSON encoding shared by the journal and JSON files.
* :mod:`munet.store.system` -- the system directory: journal of events, blobs, CSV views.
* :mod:`munet.store.check` -- ``munet check``'s integrity checks.
"""
