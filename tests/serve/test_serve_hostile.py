"""Serving under hostile input: pixel budgets from headers, early downscaling, non-finite
pixels, bodies that must never give a 500, and the serve CLI's limits."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from munet.errors import ConfigError
from munet.serve.app import ServeSettings, create_app
from munet.serve.errors import ImageError, ImageTooLargeError
from munet.serve.images import decode_image, prepare_images

SETTINGS = ServeSettings(
    batch_wait_ms=1, max_images=8, max_pixels=64 * 64, max_request_pixels=3 * 64 * 64
)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h RGBA pixels but holds almost no data (nothing to decode)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


def encode(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _files(*images: bytes) -> list:
    return [("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)]


@pytest.fixture(scope="module")
def client(synthetic):
    with TestClient(create_app(synthetic, SETTINGS)) as c:
        yield c


@pytest.mark.parametrize("w,h", [(20000, 20000), (65, 64), (100_000, 100_000)])
def test_an_image_over_the_pixel_budget_is_413_from_its_header(client, w, h):
    r = client.post("/v1/tasks/alpha/predict", files=_files(png_header_only(w, h)))
    assert r.status_code == 413, r.text
    assert "pixel" in r.json()["error"] and "\n" not in r.json()["error"]


def test_a_request_over_its_pixel_budget_is_413_before_any_decode(client, monkeypatch):
    small = encode(np.zeros((64, 64, 3), np.uint8))
    assert (
        client.post("/v1/tasks/alpha/predict", files=_files(small, small, small)).status_code == 200
    )

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded an image of a request over its budget")

    monkeypatch.setattr("munet.serve.app.decode_image", no_decode)
    r = client.post("/v1/tasks/alpha/predict", files=_files(small, small, small, small))
    assert r.status_code == 413, r.text
    assert "16,384 pixels together, more than the limit of 12,288" in r.json()["error"]


def test_non_finite_pixels_are_refused(client, synthetic):
    nan_tiff = encode(np.full((8, 8), np.nan, np.float32), "TIFF", "F")
    r = client.post("/v1/tasks/alpha/predict", files=_files(nan_tiff))
    assert r.status_code == 415 and "NaN or infinite" in r.json()["error"]
    inf = np.zeros((8, 8), np.float32)
    inf[3, 3] = np.inf
    with pytest.raises(ImageError, match="NaN or infinite"):
        synthetic.predict("alpha", encode(inf, "TIFF", "F"))
    with pytest.raises(ImageError, match="NaN or infinite"):
        import torch

        synthetic.predict("alpha", torch.full((1, 3, 32, 32), float("nan")))


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"images": ' + b"[" * 100_000,
        b'{"images": ["AAAA"], "top_k": 1e999}',
        b'{"images": ["AAAA"], "top_k": -1e999}',
        b'{"images": ["AAAA"], "top_k": [1]}',
    ],
    ids=["deep", "deep-open", "inf-top-k", "minus-inf-top-k", "list-top-k"],
)
def test_hostile_json_bodies_get_400(client, body):
    r = client.post(
        "/v1/tasks/alpha/predict", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert "\n" not in r.json()["error"]


def test_large_images_are_shrunk_early_and_oriented():
    big = np.zeros((1000, 4400, 4), np.uint8)  # 4.4 M pixels: over the early-downscale size
    big[:, :2200, 0] = 255
    big[..., 3] = 255
    png = encode(big)
    assert decode_image(png, max_pixels=10**8).size == (4400, 1000)  # no size: as evaluation
    assert decode_image(png, max_pixels=10**8, image_size=32).size == (141, 32)  # box by 31
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: the upright image is portrait
    jpg = encode(big[..., :3], "JPEG", exif=exif.tobytes())
    full = decode_image(jpg, max_pixels=10**8)
    shrunk = decode_image(jpg, max_pixels=10**8, image_size=32)
    assert full.size == (4400, 1000) and shrunk.size[1] > shrunk.size[0] >= 32
    x = prepare_images(jpg, 3, 32)  # through the API: upright, red on top
    assert x.shape == (1, 3, 32, 32)
    assert x[0, 0, :8].mean() > 0.5 and x[0, 0, -8:].mean() < -0.5


def test_serve_settings_and_cli_limits_are_one_line_errors(capsys):
    from munet.cli import main

    with pytest.raises(ConfigError, match="max_images=0"):
        ServeSettings(max_images=0)
    with pytest.raises(ConfigError, match="max_decodes"):
        ServeSettings(max_decodes=0)
    for args, message in [
        (["--max-images", "0", "--max-upload-mb", "-1"], "--max-images 0 is invalid"),
        (["--max-upload-mb", "-1"], "--max-upload-mb -1.0 is invalid"),
        (["--max-upload-mb", "nan"], "--max-upload-mb nan is invalid"),
        (["--port", "80000"], "--port 80000 is invalid"),
        (["--max-decodes", "0"], "--max-decodes 0 is invalid"),
        (["--batch-wait-ms", "-1"], "--batch-wait-ms -1.0 is invalid"),
    ]:
        assert main(["serve", "--system", "/nonexistent", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_too_large_decode_error_is_typed():
    with pytest.raises(ImageTooLargeError):
        decode_image(png_header_only(20000, 20000))
