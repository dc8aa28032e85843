"""Durable storage primitives for a muNet system directory.

* :mod:`munet.store.journal` -- append-only, CRC-checked JSON-lines event log.
* :mod:`munet.store.blobs` -- write-once safetensors files, one per component.
* :mod:`munet.store.lock` -- exclusive, process-death-safe lock on a system directory.
* :mod:`munet.store.system` -- the system directory: journal of events, blobs, CSV views.
* :mod:`munet.store.check` -- ``munet check``'s integrity checks.

They write through :mod:`munet.fileio` (crash-safe writes, the JSON codec).
"""
