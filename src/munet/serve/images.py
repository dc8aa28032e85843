"""Images in any common form -> model-ready float batches, exactly as evaluation prepares them.

Accepted: PIL images, file paths, encoded bytes, numpy arrays (H×W or H×W×C uint8), uint8
tensors ``[C, H, W]`` / ``[N, C, H, W]``, and float tensors already in [-1, 1] (the output of
``prepare_eval``). Pixels are first converted to the task's channel count (alpha composited onto
black; gray tasks see the luma of an RGB image, computed like PIL's ``convert("L")``), then
resized and scaled by :func:`munet.data.pipeline.prepare_eval`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from munet.data.decode import EARLY_DOWNSCALE_PIXELS, downscale
from munet.data.pipeline import _resize, prepare_eval
from munet.serve.errors import ImageError, ImageTooLargeError

#: File suffixes a folder given to ``munet predict`` is scanned for.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
#: Decoded images larger than this many pixels are refused (decompression bombs).
MAX_PIXELS = 4096 * 4096
_FLOAT_SLACK = 1e-3  # float inputs may overshoot [-1, 1] by rounding
_NON_FINITE = "image has NaN or infinite pixel values; send finite pixels"


def open_image(data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> Any:
    """Open encoded image bytes reading only the header; refuse over ``max_pixels`` pixels
    (:class:`ImageTooLargeError`) before anything is decoded."""
    from PIL import Image

    too_big = f"more than the limit of {max_pixels:,}; downscale it before sending"
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # PIL's own header check, far over ours
        raise ImageTooLargeError(f"{name} declares a pixel count {too_big}") from None
    except Exception as err:  # PIL raises many types for bad data
        raise ImageError(
            f"{name} is not a readable image ({err.__class__.__name__}); "
            f"send PNG, JPEG, BMP, GIF, WebP or TIFF data"
        ) from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLargeError(f"{name} is {w}x{h} pixels, {too_big}")
    return img


def decode_image(
    data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS, image_size: int | None = None
) -> Any:
    """Decode encoded image bytes (PNG, JPEG, …) into a loaded PIL image (first frame).

    With ``image_size``, an image over :data:`EARLY_DOWNSCALE_PIXELS` is shrunk while decoding
    (JPEG draft) and right after it (whole-factor box), so a large upload never costs more than
    its own uint8 pixels; smaller images are decoded exactly as evaluation decodes them.
    """
    from PIL import ImageOps

    img = open_image(data, name, max_pixels)
    w, h = img.size
    early = image_size is not None and w * h > EARLY_DOWNSCALE_PIXELS
    try:
        if early and img.format == "JPEG":
            img.draft(img.mode, (image_size, image_size))  # libjpeg decodes at 1/2 .. 1/8
        img.load()
        if early:
            ImageOps.exif_transpose(img, in_place=True)  # orient before the shrink drops EXIF
            img = downscale(img, int(image_size))
    except Exception as err:  # PIL raises many types for bad data
        raise ImageError(
            f"{name} is not a readable image ({err.__class__.__name__}); "
            f"send PNG, JPEG, BMP, GIF, WebP or TIFF data"
        ) from None
    return img


def check_request_pixels(
    files: Sequence[tuple[str, bytes]], max_pixels: int, max_total_pixels: int
) -> None:
    """Refuse a request whose images declare over ``max_pixels`` each or ``max_total_pixels``
    together (:class:`ImageTooLargeError`), from their headers alone."""
    total = 0
    for name, data in files:
        w, h = open_image(data, name, max_pixels).size
        total += w * h
    if total > max_total_pixels:
        raise ImageTooLargeError(
            f"the request's {len(files)} images have {total:,} pixels together, more than the "
            f"limit of {max_total_pixels:,}; send fewer or smaller images"
        )


def _read_file(path: str | os.PathLike, image_size: int | None = None) -> Any:
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"image file {p} does not exist") from None
    except OSError as err:
        raise ImageError(f"cannot read image file {p}: {err.strerror}") from None
    return decode_image(data, name=str(p), image_size=image_size)


def _pil_to_uint8(img: Any) -> torch.Tensor:
    """A PIL image -> uint8 [C, H, W], upright (EXIF), C = 1 or 3 plus alpha if it has one.

    Like the image-folder task decoder: 16-bit and float pixels are scaled to 0..255, palette
    images expanded; channel conversion and alpha are left to :func:`_uint8_channels`.
    """
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageError(_NON_FINITE)
        scale = 1.0 if img.mode == "F" else (257.0 if arr.max(initial=0) > 255 else 1.0)
        img = Image.fromarray(np.clip(np.round(arr / scale), 0, 255).astype(np.uint8), "L")
    gray = img.mode in ("1", "L", "LA", "La") or (img.mode == "P" and _gray_palette(img))
    alpha = img.mode in ("LA", "La", "RGBA", "RGBa", "PA") or "transparency" in img.info
    mode = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
    arr = np.asarray(img.convert(mode), dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def _gray_palette(img: Any) -> bool:
    palette = img.getpalette() or []
    rgb = [palette[i : i + 3] for i in range(0, len(palette) - 2, 3)]
    return bool(rgb) and all(r == g == b for r, g, b in rgb)


def _luma(x: torch.Tensor) -> torch.Tensor:
    """RGB uint8 [..., 3, H, W] -> gray [..., 1, H, W] with PIL's integer ITU-R 601 weights."""
    r, g, b = (x[..., i : i + 1, :, :].to(torch.int32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)


def _uint8_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 [N, C, H, W], C in 1..4 -> the task's channels: alpha (C = 2 or 4) composited
    onto black as the image-folder decoder does, RGB -> luma for gray tasks."""
    c = x.shape[1]
    if c not in (1, 2, 3, 4):
        raise ImageError(f"uint8 images have {c} channels; use 1 (gray), 3 (RGB) or 4 (RGBA)")
    if c in (2, 4):
        color, alpha = x[:, :-1].float(), x[:, -1:].float() / 255.0
        x = (color * alpha).round().to(torch.uint8)
    if channels == 1 and x.shape[1] == 3:
        x = _luma(x)
    return x


def _prepare_float(x: torch.Tensor, image_size: int) -> torch.Tensor:
    """Float [N, C, H, W] already in [-1, 1] -> [N, 3, S, S] (resized only if needed)."""
    if x.shape[1] not in (1, 3):
        raise ImageError(f"float images have {x.shape[1]} channels; use 1 or 3")
    if not bool(torch.isfinite(x).all()):
        raise ImageError(_NON_FINITE)
    if x.numel() and (x.min() < -1 - _FLOAT_SLACK or x.max() > 1 + _FLOAT_SLACK):
        raise ImageError(
            f"float images must already be scaled to [-1, 1] (got [{float(x.min()):.3g}, "
            f"{float(x.max()):.3g}]); pass raw pixels as uint8 instead"
        )
    x = x.float()
    if tuple(x.shape[-2:]) != (image_size, image_size):
        x = _resize(x, image_size)
    return x.expand(-1, 3, -1, -1).contiguous()


def _prepare_tensor(x: torch.Tensor, channels: int, image_size: int) -> torch.Tensor:
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4:
        raise ImageError(
            f"image tensors must be [C, H, W] or [N, C, H, W]; got shape {tuple(x.shape)}"
        )
    if x.dtype == torch.uint8:
        return prepare_eval(_uint8_channels(x.cpu(), channels), image_size)
    if x.is_floating_point():
        return _prepare_float(x.detach().cpu(), image_size)
    raise ImageError(f"image tensors must be uint8 or float in [-1, 1], got {x.dtype}")


def _prepare_one(item: Any, channels: int, image_size: int) -> torch.Tensor:
    """One image-like item -> float [n, 3, S, S] (n > 1 only for a 4-D tensor)."""
    from PIL import Image

    if isinstance(item, torch.Tensor):
        return _prepare_tensor(item, channels, image_size)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim not in (2, 3):
            raise ImageError(
                f"numpy images must be uint8 H×W or H×W×C arrays, got {item.dtype} {item.shape}"
            )
        arr = item[:, :, None] if item.ndim == 2 else item
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
        return _prepare_tensor(t, channels, image_size)
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, (str, os.PathLike)):
        img = _read_file(item, image_size)
    elif isinstance(item, (bytes, bytearray, memoryview)):
        img = decode_image(bytes(item), image_size=image_size)
    else:
        raise ImageError(
            f"cannot use a {type(item).__name__} as an image; pass PIL images, file paths, "
            "bytes, uint8 tensors [N, C, H, W] or float tensors in [-1, 1]"
        )
    return _prepare_tensor(_pil_to_uint8(img), channels, image_size)


def prepare_images(images: Any, channels: int, image_size: int) -> torch.Tensor:
    """Any accepted image input (one image, a batch tensor or a sequence) -> float
    ``[N, 3, S, S]`` in [-1, 1], the input of a path model of image size ``S``."""
    items: Sequence[Any] | Iterable[Any]
    if isinstance(images, (torch.Tensor, np.ndarray, str, os.PathLike, bytes, bytearray)):
        items = [images]
    elif hasattr(images, "convert") and hasattr(images, "size"):  # a PIL image
        items = [images]
    else:
        try:
            items = list(images)
        except TypeError:
            items = [images]
    parts = [_prepare_one(item, channels, image_size) for item in items]
    if not parts:
        raise ImageError("no images given; pass at least one image")
    return torch.cat(parts) if len(parts) > 1 else parts[0]


def image_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """File arguments with folders expanded to their image files (sorted, not recursive)."""
    out: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"folder {p} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
            out.extend(found)
        elif p.exists():
            out.append(p)
        else:
            raise ImageError(f"image file {p} does not exist")
    return out
