"""A bounded load of large images on loopback against a server in its own process, whose peak
RSS (``VmHWM``, reset before the load) must stay within a bound: images are decoded one at a
time per request, shrunk early, and at most ``max_decodes`` at once over all requests."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

SIDE = 2048  # 4.2 M pixels: 16 MB of RGBA each, just over the early-downscale size
IMAGES, REQUESTS = 8, 3  # all decoded at once would cost > 1 GB of uint8 and float copies
BOUND_MB = 160

SERVER = textwrap.dedent(
    f"""
    import sys, munet
    from munet.serve.app import ServeSettings, create_app, serve_in_thread
    s = ServeSettings(batch_wait_ms=1, max_images={IMAGES}, max_pixels={SIDE * SIDE},
                      max_request_pixels={IMAGES * SIDE * SIDE}, max_decodes=1)
    with serve_in_thread(create_app(munet.load(sys.argv[1]), s)) as url:
        print(url, flush=True)
        sys.stdin.read()
    """
)


def _kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_large_images_under_concurrent_load_keep_peak_rss_bounded(synthetic_dir):
    ramp = np.linspace(0, 255, SIDE, dtype=np.uint8)
    rgba = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, :], 255), -1)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba.astype(np.uint8)), "RGBA").save(buf, "PNG")
    png = buf.getvalue()  # compresses to a few hundred KB
    files = [("file", (f"{i}.png", png, "image/png")) for i in range(IMAGES)]

    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(synthetic_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), "server did not start"
        with httpx.Client(base_url=url, timeout=120) as http:
            small = [("file", ("s.png", png, "image/png"))]
            assert http.post("/v1/tasks/alpha/predict", files=small).status_code == 200  # warm
        base = _kib(proc.pid, "VmRSS")
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS

        def call(_: int) -> int:
            with httpx.Client(base_url=url, timeout=120) as http:
                return http.post("/v1/tasks/alpha/predict", files=files).status_code

        with ThreadPoolExecutor(REQUESTS) as pool:
            codes = list(pool.map(call, range(REQUESTS)))
        peak = _kib(proc.pid, "VmHWM")
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    assert codes == [200] * REQUESTS
    grew_mb = (peak - base) / 1024
    assert grew_mb < BOUND_MB, f"peak RSS grew by {grew_mb:.0f} MB under load"
