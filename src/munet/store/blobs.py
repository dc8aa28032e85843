"""Write-once safetensors files, one per component: ``<root>/components/<id>.safetensors``.

A component's tensors never change once written (a changed component gets a new id), so
:meth:`BlobStore.put` on an existing id is a no-op when the content is identical and an error
otherwise. :meth:`BlobStore.put` returns a *record* that callers keep (e.g. in the journal)
and pass back to :meth:`BlobStore.get` / :meth:`BlobStore.verify` to detect corruption::

    {"sha256": "<hex of the file bytes>", "shapes": {name: [dims]},
     "dtypes": {name: "float32" | "bfloat16" | "int64" | ...}, "numel": <total elements>}

Dtype names are ``str(torch_dtype)`` without the ``torch.`` prefix. Files are written with
:func:`munet.fileio.atomic.atomic_write_bytes`; no pickle is involved anywhere.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from munet.errors import StoreError
from munet.fileio.atomic import PathLike, atomic_write_bytes, fsync_directory

SUFFIX = ".safetensors"
_DAMAGED = "restore the system directory from backup or run `munet check`"


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


def _check_id(component_id: Any) -> int:
    if isinstance(component_id, bool) or not isinstance(component_id, int) or component_id < 0:
        raise StoreError(f"component id must be a non-negative int, got {component_id!r}")
    return int(component_id)


def _prepare(component_id: int, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors, each owning exactly its own storage."""
    if not isinstance(tensors, Mapping):
        raise StoreError(
            f"component {component_id}: tensors must be a dict of name -> tensor, "
            f"got {type(tensors).__name__}"
        )
    out: dict[str, torch.Tensor] = {}
    seen_storages: set[int] = set()
    for name, tensor in tensors.items():
        if not isinstance(name, str) or not name:
            raise StoreError(f"component {component_id}: tensor name {name!r} must be a str")
        if not isinstance(tensor, torch.Tensor):
            raise StoreError(
                f"component {component_id}: {name!r} is a {type(tensor).__name__}, "
                "not a torch.Tensor"
            )
        t = tensor.detach().to("cpu").contiguous()
        if t.is_sparse or t.layout != torch.strided:
            raise StoreError(f"component {component_id}: {name!r} must be a dense tensor")
        # safetensors refuses tensors sharing storage (tied weights, views of one buffer):
        # give a view of a bigger storage, or a second user of a storage, its own copy.
        storage = t.untyped_storage()
        if storage.nbytes() != t.numel() * t.element_size() or storage.data_ptr() in seen_storages:
            t = t.clone()
        seen_storages.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def make_record(data: bytes, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Build the record for a blob file's bytes and its tensors."""
    return {
        "sha256": hashlib.sha256(data).hexdigest(),
        "shapes": {name: list(t.shape) for name, t in sorted(tensors.items())},
        "dtypes": {name: dtype_name(t.dtype) for name, t in sorted(tensors.items())},
        "numel": sum(t.numel() for t in tensors.values()),
    }


def _bitwise_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    if set(a) != set(b):
        return False
    for name, x in a.items():
        y = b[name]
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if x.numel() and not torch.equal(
            x.reshape(-1).view(torch.uint8), y.reshape(-1).view(torch.uint8)
        ):
            return False
    return True


class BlobStore:
    """Component tensors of one system, stored under ``<root>/components/``.

    ``root`` is the system directory; the ``components`` sub-directory is created on the first
    :meth:`put`. Writers must hold :class:`~munet.store.lock.SystemLock`.
    """

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)
        self.directory = self.root / "components"

    def __repr__(self) -> str:
        return f"BlobStore({str(self.root)!r})"

    def path(self, component_id: int) -> Path:
        """The file holding component ``component_id``."""
        return self.directory / f"{_check_id(component_id)}{SUFFIX}"

    def exists(self, component_id: int) -> bool:
        """Whether a blob file exists for ``component_id`` (its content is not checked)."""
        return self.path(component_id).is_file()

    def ids(self) -> set[int]:
        """Ids of all stored components (temp files and foreign names are ignored)."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return set()
        found = set()
        for name in names:
            stem = name.removesuffix(SUFFIX)
            if name.endswith(SUFFIX) and stem.isdigit() and str(int(stem)) == stem:
                found.add(int(stem))
        return found

    def put(self, component_id: int, tensors: Mapping[str, torch.Tensor]) -> dict[str, Any]:
        """Write component ``component_id`` once and return its record (see module docstring).

        Tensors are detached, moved to CPU and made contiguous. If the id already exists with
        identical tensors this is a no-op that returns the existing file's record; different
        tensors raise :class:`~munet.errors.StoreError` (blobs are write-once).
        """
        cid = _check_id(component_id)
        prepared = _prepare(cid, tensors)
        try:
            data = safetensors.torch.save(prepared, metadata={"format": "pt"})
        except Exception as err:  # safetensors raises bare RuntimeError/ValueError/...
            raise StoreError(f"component {cid}: cannot serialize tensors ({err})") from err
        path = self.path(cid)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = None
        if existing is not None:
            if existing == data:
                return make_record(data, prepared)
            try:
                old = safetensors.torch.load(existing)
            except Exception as err:
                raise StoreError(
                    f"component blob {path} already exists but is unreadable ({err}); {_DAMAGED}"
                ) from err
            if _bitwise_equal(old, prepared):
                return make_record(existing, old)
            raise StoreError(
                f"component {cid} already exists in {path} with different tensors; "
                "component blobs are write-once, store the changed component under a new id"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create {self.directory}: {err.strerror}") from err
        atomic_write_bytes(path, data)
        return make_record(data, prepared)

    def _load(
        self, cid: int, record: Mapping[str, Any] | None
    ) -> tuple[dict[str, torch.Tensor] | None, str | None]:
        """``(tensors, None)`` when OK, else ``(None, one-line problem)``."""
        path = self.path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, f"component blob {path} is missing"
        except OSError as err:
            return None, f"component blob {path} cannot be read ({err.strerror})"
        if record is not None:
            expected = record.get("sha256") if isinstance(record, Mapping) else None
            if not isinstance(expected, str):
                raise StoreError(f"record for component {cid} has no 'sha256': {record!r:.200}")
            actual = hashlib.sha256(data).hexdigest()
            if actual != expected:
                return None, (
                    f"component blob {path} is corrupt (sha256 {actual[:12]}... "
                    f"!= recorded {expected[:12]}...)"
                )
        try:
            tensors = safetensors.torch.load(data)
        except Exception as err:
            return None, f"component blob {path} is truncated or not a safetensors file ({err})"
        if record is not None:
            got = make_record(data, tensors)
            for key in ("shapes", "dtypes", "numel"):
                if key in record and record[key] != got[key]:
                    return None, (
                        f"component blob {path} does not match its record ({key}: file has "
                        f"{got[key]!r:.120}, record has {record[key]!r:.120})"
                    )
        return tensors, None

    def get(
        self, component_id: int, record: Mapping[str, Any] | None = None
    ) -> dict[str, torch.Tensor]:
        """Load component ``component_id`` as CPU tensors.

        With ``record`` (as returned by :meth:`put`), the file's sha256, shapes, dtypes and
        numel are verified. A missing, unreadable, truncated or mismatching file raises
        :class:`~munet.errors.StoreError` naming the file.
        """
        tensors, problem = self._load(_check_id(component_id), record)
        if problem is not None or tensors is None:
            raise StoreError(f"{problem}; {_DAMAGED}")
        return tensors

    def verify(self, component_id: int, record: Mapping[str, Any]) -> str | None:
        """Check component ``component_id`` against ``record``: ``None`` if OK, else a problem.

        The problem is a one-line description naming the file (used by ``munet check``).
        """
        return self._load(_check_id(component_id), record)[1]

    def delete(self, component_ids: Iterable[int]) -> list[int]:
        """Delete the given components' files; ids without a file are ignored.

        Returns the ids actually deleted (sorted). The directory is fsynced afterwards.
        """
        deleted = []
        for cid in sorted({_check_id(c) for c in component_ids}):
            path = self.path(cid)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as err:
                raise StoreError(
                    f"cannot delete {path}: {err.strerror}; check permissions"
                ) from err
            deleted.append(cid)
        if deleted:
            fsync_directory(self.directory)
        return deleted
