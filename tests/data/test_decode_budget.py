"""Decoding with a pixel budget: huge images are shrunk before any float copy, or skipped."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
from PIL import Image

import munet.data.decode as decode
from munet.data.decode import decode_files, to_array


def _rgba(size: int) -> Image.Image:
    arr = np.zeros((size, size, 4), dtype=np.uint8)
    arr[:, :, 0] = 200
    arr[:, : size // 2, 3] = 255  # left half opaque red, right half transparent
    return Image.fromarray(arr, "RGBA")


def test_a_large_rgba_png_is_shrunk_before_alpha_compositing(tmp_path) -> None:
    path = tmp_path / "big.png"
    _rgba(3000).save(path)  # 9 M pixels; compositing at full size allocates > 100 MB of floats
    tracemalloc.start()
    with Image.open(path) as img:
        out = to_array(img, None)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert out.shape == (64, 64, 3)
    assert peak < 16 * 2**20, peak
    # composited onto black after the shrink: opaque red on the left, black on the right
    assert out[:, :30, 0].min() == 200 and out[:, 34:].max() == 0


def test_an_image_over_the_pixel_budget_is_skipped_unread(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(decode, "MAX_DECODE_PIXELS", 40 * 40 - 1)
    buf = io.BytesIO()
    _rgba(40).save(buf, format="PNG")
    (tmp_path / "a.png").write_bytes(buf.getvalue())
    arrays, errors = decode_files([tmp_path / "a.png"], None)
    assert arrays == [None] and len(errors) == 1 and "ValueError" in errors[0]
