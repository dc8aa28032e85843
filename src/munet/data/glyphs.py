"""Deterministic renderer of 32x32 glyph images from the TTF fonts that ship with matplotlib.

Each glyph is drawn once per eligible font with PIL on a 64x64 canvas, dilated (stroke
variants) and 2x2 box-downsampled (the "bases"); every sample is then a batched bilinear affine
warp of a base (font size, aspect, rotation, translation), a blur jitter and an ink-level jitter.
All random parameters come from one numpy Generator per split, so a (charset, counts, seed)
triple always renders the same uint8 arrays.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from munet.errors import TaskError

RENDER_VERSION = 1
"""Bump when the renderer output changes: cache file names include it."""

IMAGE_SIZE = 32
_CANVAS = 64  # base canvas side, pixels
_EM = 40  # font size of the base rendering, pixels
_MARGIN = 15.0  # max half-extent of the ink in the 32x32 output, pixels

# Fonts used, by file-name prefix. The Computer Modern fonts use TeX encodings: their cmap claims
# ASCII code points that hold other glyphs in cmsy/cmmi/cmex, so only the text fonts are used, and
# only for ASCII letters and digits (where they are correct).
_UNICODE_FONT_PREFIXES = ("DejaVuSans", "DejaVuSerif", "STIXGeneral")
_ASCII_ONLY_FONTS = ("cmr10", "cmss10", "cmtt10", "cmb10", "cmti10")
_EXCLUDED_MARKERS = ("Display",)

# Sample-parameter distributions (output pixels unless noted).
_EM_RANGE = (16.0, 30.0)  # rendered font size
_ASPECT_RANGE = (0.85, 1.15)  # horizontal / vertical stretch
_MAX_ROTATION_DEG = 15.0
_MAX_SHIFT = 5.0
_STROKE_PROBS = (0.6, 0.3, 0.1)  # none, 3x3 dilation, 5x5 dilation (canvas pixels)
_BLUR_SIGMAS = (0.0, 0.5, 0.8)
_BLUR_PROBS = (0.5, 0.3, 0.2)
_INK_RANGE = (0.7, 1.0)
_CHUNK = 1024


@dataclass(frozen=True)
class FontInfo:
    """One TTF font file usable for rendering."""

    name: str
    path: str
    ascii_only: bool
    charmap: frozenset[int]


def font_dir() -> Path:
    """The folder holding matplotlib's bundled TTF fonts."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


@functools.lru_cache(maxsize=1)
def available_fonts() -> tuple[FontInfo, ...]:
    """The fonts the renderer may use, sorted by file name (fixed order for determinism)."""
    from matplotlib.ft2font import FT2Font

    fonts = []
    for path in sorted(font_dir().glob("*.ttf")):
        stem = path.stem
        ascii_only = stem in _ASCII_ONLY_FONTS
        if not (ascii_only or stem.startswith(_UNICODE_FONT_PREFIXES)):
            continue
        if any(m in stem for m in _EXCLUDED_MARKERS):
            continue
        charmap = frozenset(FT2Font(str(path)).get_charmap())
        fonts.append(FontInfo(stem, str(path), ascii_only, charmap))
    if not fonts:
        raise TaskError(
            f"no usable fonts in {font_dir()}; reinstall matplotlib (it ships the DejaVu fonts)"
        )
    return tuple(fonts)


def _font_has(font: FontInfo, ch: str) -> bool:
    if font.ascii_only and not (ch.isascii() and ch.isalnum()):
        return False
    return ord(ch) in font.charmap


def fonts_for_char(ch: str) -> list[FontInfo]:
    """The fonts whose character map contains ``ch`` (and that render it with visible ink)."""
    return [f for f in available_fonts() if _font_has(f, ch) and _base(f.path, ch) is not None]


@functools.cache
def _pil_font(path: str):
    from PIL import ImageFont

    return ImageFont.truetype(path, _EM, layout_engine=ImageFont.Layout.BASIC)


@functools.cache
def _base(path: str, ch: str) -> tuple[np.ndarray, float, float, float, float] | None:
    """Render ``ch`` centred on the canvas: (mask float32 [C, C] in [0, 1], cx, cy, hw, hh)."""
    from PIL import Image, ImageDraw

    font = _pil_font(path)
    img = Image.new("L", (_CANVAS, _CANVAS), 0)
    left, top, right, bottom = font.getbbox(ch)
    origin = (_CANVAS / 2 - (left + right) / 2, _CANVAS / 2 - (top + bottom) / 2)
    ImageDraw.Draw(img).text(origin, ch, font=font, fill=255)
    mask = np.asarray(img, dtype=np.float32) / 255.0
    rows = np.flatnonzero(mask.max(axis=1) > 0.1)
    cols = np.flatnonzero(mask.max(axis=0) > 0.1)
    if rows.size == 0 or cols.size == 0:
        return None
    x0, x1 = float(cols[0]), float(cols[-1] + 1)
    y0, y1 = float(rows[0]), float(rows[-1] + 1)
    return mask, (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2


def renderer_key(chars: Sequence[str]) -> str:
    """A short digest of everything besides seed and counts that determines the rendered pixels."""
    fonts = [(f.name, os.path.getsize(f.path)) for f in available_fonts()]
    blob = json.dumps(
        {
            "version": RENDER_VERSION,
            "chars": list(chars),
            "fonts": fonts,
            "params": [_EM_RANGE, _ASPECT_RANGE, _MAX_ROTATION_DEG, _MAX_SHIFT, _STROKE_PROBS],
            "blur": [_BLUR_SIGMAS, _BLUR_PROBS, _INK_RANGE, _CANVAS, _EM, _MARGIN],
        }
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


class _Bank:
    """All base renderings of a charset, as uint8 [M, 3, 32, 32] (stroke variants 0, 1, 2: none,
    3x3 and 5x5 dilation at canvas resolution, then a 2x2 box downsample) plus geometry."""

    def __init__(self, chars: Sequence[str]):
        masks, geom, start, count = [], [], [], []
        for ch in chars:
            entries = [_base(f.path, ch) for f in fonts_for_char(ch)]
            if not entries:
                raise TaskError(
                    f"glyph {ch!r} (U+{ord(ch):04X}) is in no font under {font_dir()}; "
                    "remove it from the charset"
                )
            start.append(len(masks))
            count.append(len(entries))
            for mask, cx, cy, hw, hh in entries:
                masks.append(mask)
                geom.append((cx, cy, hw, hh))
        base = torch.from_numpy(np.stack(masks))[:, None]
        variants = torch.cat([base, F.max_pool2d(base, 3, 1, 1), F.max_pool2d(base, 5, 1, 2)], 1)
        small = F.avg_pool2d(variants, _CANVAS // IMAGE_SIZE)
        self.masks = torch.round(small * 255.0).to(torch.uint8)
        self.geom = np.asarray(geom, dtype=np.float64)
        self.start = np.asarray(start, dtype=np.int64)
        self.count = np.asarray(count, dtype=np.int64)


@functools.lru_cache(maxsize=8)
def _bank(chars: tuple[str, ...]) -> _Bank:
    return _Bank(chars)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of a [B, 1, H, W] batch (replicate padding)."""
    radius = max(1, math.ceil(2.5 * sigma))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma) ** 2)
    taps = (taps / taps.sum()).float()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1))


def render_split(
    chars: Sequence[str],
    n_per_class: int,
    seed_entropy: Sequence[int],
    advance: Callable[[int], Any] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n_per_class`` images of every char, in a seeded random class order.

    Returns (x uint8 [N, 1, 32, 32], y int64 [N]) as numpy arrays, N = len(chars) * n_per_class.
    ``seed_entropy`` seeds a ``numpy.random.SeedSequence``; equal entropy gives equal arrays.
    ``advance(k)`` is called as each chunk of k images is done (progress).
    """
    k = len(chars)
    n = k * n_per_class
    if n == 0:
        return np.zeros((0, 1, IMAGE_SIZE, IMAGE_SIZE), np.uint8), np.zeros((0,), np.int64)
    bank = _bank(tuple(chars))
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(seed_entropy))))

    # Every parameter is drawn up front, in a fixed order.
    y = rng.permutation(np.repeat(np.arange(k, dtype=np.int64), n_per_class))
    entry = bank.start[y] + np.minimum(
        (rng.random(n) * bank.count[y]).astype(np.int64), bank.count[y] - 1
    )
    em = rng.uniform(*_EM_RANGE, size=n)
    aspect = rng.uniform(*_ASPECT_RANGE, size=n)
    theta = np.deg2rad(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG, size=n))
    shift_u = rng.uniform(-1.0, 1.0, size=(n, 2))
    stroke = rng.choice(len(_STROKE_PROBS), size=n, p=_STROKE_PROBS)
    blur = rng.choice(len(_BLUR_SIGMAS), size=n, p=_BLUR_PROBS)
    ink = rng.uniform(*_INK_RANGE, size=n)

    # Geometry: output (32-px units, centred) p_out = t + R(theta) S (p_in - c) * k.
    cx, cy, hw, hh = (bank.geom[entry, i] for i in range(4))
    hw = hw + stroke  # dilation widens the ink by up to 2 canvas pixels each side
    hh = hh + stroke
    scale = em / _EM
    sx, sy = scale * aspect, scale / aspect
    cos, sin = np.abs(np.cos(theta)), np.abs(np.sin(theta))
    ext_x = cos * hw * sx + sin * hh * sy
    ext_y = sin * hw * sx + cos * hh * sy
    shrink = np.minimum(1.0, _MARGIN / np.maximum(np.maximum(ext_x, ext_y), 1e-6))
    sx, sy, ext_x, ext_y = sx * shrink, sy * shrink, ext_x * shrink, ext_y * shrink
    slack_x = np.clip(_MARGIN - ext_x, 0.0, _MAX_SHIFT)
    slack_y = np.clip(_MARGIN - ext_y, 0.0, _MAX_SHIFT)
    tx, ty = shift_u[:, 0] * slack_x, shift_u[:, 1] * slack_y

    # Inverse map for affine_grid: u_in = A u_out + b (normalised coords, align_corners=False).
    # p_in - c = S^-1 R(-theta) (p_out - t); p_out = 16 u_out; u_in = (c + p_in - c) / 32 - 1.
    c_, s_ = np.cos(theta), np.sin(theta)
    half = IMAGE_SIZE / 2
    inv = np.empty((n, 2, 2))
    inv[:, 0, 0], inv[:, 0, 1] = c_ / sx, s_ / sx
    inv[:, 1, 0], inv[:, 1, 1] = -s_ / sy, c_ / sy
    a = inv * (half / (_CANVAS / 2))
    off = -(inv @ np.stack([tx, ty], axis=1)[:, :, None])[:, :, 0]
    b = (np.stack([cx, cy], axis=1) + off) / (_CANVAS / 2) - 1.0
    theta_mat = torch.from_numpy(np.concatenate([a, b[:, :, None]], axis=2)).float()

    out = torch.empty((n, 1, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.uint8)
    entry_t = torch.from_numpy(entry)
    stroke_t = torch.from_numpy(stroke)
    blur_t = torch.from_numpy(blur)
    ink_t = torch.from_numpy(ink).float()
    for lo in range(0, n, _CHUNK):
        hi = min(n, lo + _CHUNK)
        base = bank.masks[entry_t[lo:hi], stroke_t[lo:hi]][:, None].float() / 255.0
        grid = F.affine_grid(theta_mat[lo:hi], [hi - lo, 1, IMAGE_SIZE, IMAGE_SIZE], False)
        img = F.grid_sample(base, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        bl = blur_t[lo:hi]
        for level, sigma in enumerate(_BLUR_SIGMAS):
            sel = (bl == level).nonzero().flatten()
            if sigma > 0 and sel.numel():
                img[sel] = _gaussian_blur(img[sel], sigma)
        img = img * ink_t[lo:hi].view(-1, 1, 1, 1)
        out[lo:hi] = torch.round(img.clamp(0.0, 1.0) * 255.0).to(torch.uint8)
        if advance is not None:
            advance(hi - lo)
    return out.numpy(), y
