"""On-disk cache of rendered datasets: compressed .npz files of uint8/int64 arrays."""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

CACHE_ENV = "MUNET_CACHE_DIR"


def cache_root() -> Path:
    """munet's cache folder: ``$MUNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/munet``, else
    ``~/.cache/munet`` (rendered data in ``data/``, pretrained builtin roots in ``roots/``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser()
    if not xdg.is_absolute():  # the XDG spec: a relative path is invalid and ignored
        xdg = Path.home() / ".cache"
    return xdg / "munet"


def default_cache_dir() -> Path:
    """The data cache: ``data/`` in :func:`cache_root`."""
    return cache_root() / "data"


def resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """``cache_dir`` as a Path, or the default cache folder when None."""
    return Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()


def load_arrays(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays stored in ``path``, or None if it is missing, unreadable or lacks a key."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if not all(k in z.files for k in keys):
                return None
            return {k: z[k] for k in keys}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def save_arrays(path: Path, arrays: dict[str, np.ndarray], compress: bool = True) -> None:
    """Write ``arrays`` to ``path`` atomically (temp file + os.replace); warn if impossible.

    ``compress=False`` suits photos, which zlib barely shrinks at a high cost in time.
    """
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        warnings.warn(f"could not write data cache {path}: {err}", stacklevel=2)
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
