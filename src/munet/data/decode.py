"""Decoding images into a task's uint8 storage: one colour mode and one size per task.

Rules (shared by the ``imagefolder:`` and ``torchvision:`` sources):

- **colour**: an image is gray when its mode has one channel (1, L, I, I;16, F, LA) or when all
  its pixels have R = G = B; a task is stored with 1 channel if every image is gray, else with
  3 (gray images are repeated into RGB). Alpha is composited onto black (transparent pixels
  become 0), palette images are expanded, 16-bit and float images are scaled to 0..255, and EXIF
  orientation is applied.
- **size**: ``size=None`` (the default) keeps the images as they are when they all have the same
  shape no larger than :data:`DEFAULT_STORAGE_SIZE` on either side, else resizes every image to
  ``DEFAULT_STORAGE_SIZE`` squared; ``size=N`` resizes every image to N x N; ``size="keep"``
  keeps them and refuses differing shapes. Resizing squashes the whole image (no crop): the
  training crop is applied later, per batch (:mod:`munet.data.pipeline`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from munet.errors import TaskError
from munet.progress import Progress

logger = logging.getLogger(__name__)

DEFAULT_STORAGE_SIZE = 64
#: Images with more pixels are skipped unread (a 344 KB PNG can declare 9400 x 9400).
MAX_DECODE_PIXELS = 100_000_000
#: Larger images are box-downscaled right after decoding, before any colour conversion or
#: alpha compositing allocates per-pixel floats.
EARLY_DOWNSCALE_PIXELS = 4_000_000
IMAGE_SUFFIXES = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}
)
Size = int | str | None


def parse_size(value: Any, where: str) -> Size:
    """``None``, ``"keep"`` or a positive int (from a spec option or a task file)."""
    if value is None or value == "keep":
        return value
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if isinstance(value, bool) or size < 1 or size > 4096:
        raise TaskError(f"size={value!r} in {where} is invalid; use a pixel count or 'keep'")
    return size


def to_array(img: Any, size: Size) -> np.ndarray:
    """A PIL image -> uint8 [H, W, C] with C = 1 (gray) or 3, resized per the size rule.

    With ``size=None`` only images larger than the default storage size are shrunk here (the
    task-wide decision is made by :func:`stack`).
    """
    from PIL import Image, ImageOps

    target = DEFAULT_STORAGE_SIZE if size is None else size
    w, h = img.size
    if w * h > MAX_DECODE_PIXELS:
        raise ValueError(f"{w}x{h} is over the decode budget of {MAX_DECODE_PIXELS:,} pixels")
    if isinstance(target, int) and img.format == "JPEG" and max(img.size) > 2 * target:
        img.draft(img.mode, (target, target))  # let libjpeg decode at 1/2 .. 1/8 scale
    img = ImageOps.exif_transpose(img)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if isinstance(target, int) and img.size[0] * img.size[1] > EARLY_DOWNSCALE_PIXELS:
        img = downscale(img, target)
    mode = img.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 1.0 if mode == "F" else (257.0 if arr.max(initial=0) > 255 else 1.0)
        img = Image.fromarray(np.clip(np.round(arr / scale), 0, 255).astype(np.uint8), "L")
    elif mode == "1":
        img = img.convert("L")
    elif mode in ("LA", "La", "PA"):
        img = _over_black(img.convert("LA"))
    elif mode in ("RGBA", "RGBa"):
        img = _over_black(img.convert("RGBA"))
    elif mode != "L" and mode != "RGB":
        img = img.convert("RGB")
    if isinstance(target, int) and (img.size != (target, target)):
        if size is not None or max(img.size) > target:
            img = img.resize((target, target), Image.Resampling.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        return arr[:, :, None]
    if (arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all():
        return np.ascontiguousarray(arr[:, :, :1])
    return arr


def downscale(img: Any, target: int) -> Any:
    """Box-shrink by the largest whole factor that keeps both sides >= ``target``. PIL resizes
    RGBA/LA with premultiplied alpha, so compositing onto black afterwards gives what
    compositing first would, without a float copy of the full image."""
    from PIL import Image

    w, h = img.size
    factor = min(w // target, h // target)
    if factor < 2:
        return img
    try:
        return img.resize((w // factor, h // factor), Image.Resampling.BOX)
    except ValueError:  # a mode PIL cannot resize: converted at full size below
        return img


def _over_black(img: Any) -> Any:
    from PIL import Image

    arr = np.asarray(img, dtype=np.float32)
    color = arr[:, :, :-1] * (arr[:, :, -1:] / 255.0)
    out = np.round(color).astype(np.uint8)
    return Image.fromarray(out[:, :, 0] if out.shape[2] == 1 else out)


def stack(images: Sequence[np.ndarray], size: Size, where: str) -> np.ndarray:
    """[H, W, C] arrays -> one uint8 [N, C, H, W] array under the task-wide colour/size rule."""
    from PIL import Image

    if not images:
        return np.zeros((0, 1, 1, 1), dtype=np.uint8)
    channels = 3 if any(a.shape[2] == 3 for a in images) else 1
    shapes = {a.shape[:2] for a in images}
    if len(shapes) > 1:
        if size == "keep":
            raise TaskError(
                f"{where}: images have {len(shapes)} different sizes (e.g. "
                f"{sorted(shapes)[:3]}) but size=keep; give size=N to resize them"
            )
        target = DEFAULT_STORAGE_SIZE if size is None else int(size)
        images = [
            a
            if a.shape[:2] == (target, target)
            else np.asarray(
                Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).resize(
                    (target, target), Image.Resampling.BILINEAR
                )
            ).reshape(target, target, a.shape[2])
            for a in images
        ]
    out = np.stack([np.repeat(a, channels // a.shape[2], axis=2) for a in images])
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def warn_skipped(where: str, errors: Sequence[str]) -> None:
    """One warning naming the first three unreadable images and how many there were."""
    if errors:
        more = f" and {len(errors) - 3} more" if len(errors) > 3 else ""
        warnings.warn(
            f"{where}: skipped {len(errors)} unreadable image(s): {'; '.join(errors[:3])}{more}",
            stacklevel=3,
        )


def decode_files(
    paths: Sequence[Path], size: Size, workers: int | None = None, desc: str = "decode"
) -> tuple[list[np.ndarray | None], list[str]]:
    """Decode image files in parallel (PIL releases the GIL); unreadable ones give None.

    Returns the arrays (None where decoding failed) and one error string per failure.
    """
    from PIL import Image

    def one(i: int) -> tuple[np.ndarray | None, str | None]:
        path = paths[i]
        try:
            with Image.open(path) as img:
                return to_array(img, size), None
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
            return None, f"{path} ({err.__class__.__name__})"

    results = map_items(one, len(paths), workers, desc)
    return [r[0] for r in results], [r[1] for r in results if r[1] is not None]


def map_items(
    fn: Callable[[int], Any], n: int, workers: int | None = None, desc: str = "decode"
) -> list[Any]:
    """``[fn(i) for i in range(n)]`` on a thread pool (dataset ``__getitem__`` decodes), with
    progress named ``desc``."""
    workers = workers or min(8, os.cpu_count() or 1)
    out = []
    with Progress(n, desc, unit="img", logger=logger) as count:
        if workers > 1 and n > 16:
            with ThreadPoolExecutor(workers) as pool:
                for item in pool.map(fn, range(n), chunksize=64):
                    out.append(item)
                    count.advance()
        else:
            for i in range(n):
                out.append(fn(i))
                count.advance()
    return out
