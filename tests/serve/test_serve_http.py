"""The HTTP app: endpoints through TestClient, bad requests, a real uvicorn, a bounded load."""

from __future__ import annotations

import base64
import io
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from munet.serve.app import ServeSettings, create_app, serve_in_thread


def _png(seed: int, size: int = 12, mode: str = "L") -> bytes:
    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


SETTINGS = ServeSettings(
    batch_wait_ms=20, max_images=4, max_upload_bytes=64 * 1024, max_pixels=256 * 256
)


@pytest.fixture(scope="module")
def client(evolved):
    with TestClient(create_app(evolved, SETTINGS)) as c:
        yield c


def test_health_and_tasks(client, evolved):
    assert client.get("/healthz").json() == {"status": "ok", "tasks": 2}
    tasks = client.get("/v1/tasks").json()["tasks"]
    assert [t["task"] for t in tasks] == ["digits", "glyph_digits"]
    for t in tasks:
        assert t["classes"] == evolved.classes(t["task"])
        assert t["test_accuracy"] == evolved.path(t["task"]).metrics["test_quality"]
        assert t["params"] == evolved.info(t["task"])["params"]
    assert client.get("/v1/tasks/digits").json()["num_classes"] == 10


def test_predict_multipart_and_json_equal_the_python_api(client, evolved):
    images = [_png(i) for i in range(3)] + [_png(9, size=40, mode="RGB")]
    want = evolved.predict("digits", images, top_k=2)
    r = client.post(
        "/v1/tasks/digits/predict?top_k=2",
        files=[("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)],
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"task": "digits", "predictions": want}
    body = {"images": [base64.b64encode(d).decode() for d in images], "top_k": 2}
    assert client.post("/v1/tasks/digits/predict", json=body).json()["predictions"] == want
    data_url = "data:image/png;base64," + base64.b64encode(images[0]).decode()
    r = client.post("/v1/tasks/glyph_digits/predict", json={"images": [data_url]})
    assert r.json()["predictions"] == evolved.predict("glyph_digits", images[:1])


PNG64 = base64.b64encode(_png(0)).decode()
BAD = [
    ("unknown task", "/v1/tasks/nope/predict", {"json": {"images": []}}, 404, "unknown task"),
    ("text body", None, {"content": b"hi", "headers": {"content-type": "text/plain"}}, 415, ""),
    ("no content type", None, {"content": b"hi"}, 415, "not supported"),
    ("not an image", None, {"files": [("f", ("a.png", b"hello", "image/png"))]}, 415, "a.png"),
    ("not base64", None, {"json": {"images": ["%%%"]}}, 400, "base64"),
    ("base64 of text", None, {"json": {"images": ["aGVsbG8="]}}, 415, "images[0]"),
    ("bad json", None, {"content": b"{", "headers": {"content-type": "application/json"}}, 400, ""),
    ("no list", None, {"json": {"image": "x"}}, 400, "images"),
    ("number", None, {"json": {"images": [3]}}, 400, "base64 string"),
    ("no images", None, {"json": {"images": []}}, 400, "no images"),
    ("too many json", None, {"json": {"images": [PNG64] * 5}}, 413, ""),
    ("too many files", None, {"files": [("f", ("a.png", _png(0), "image/png"))] * 6}, 413, ""),
    ("body too large", None, {"files": [("f", ("a.png", b"0" * 70_000, "image/png"))]}, 413, ""),
    (
        "too many pixels",
        None,
        {"files": [("f", ("a.png", _png(0, size=300), "image/png"))]},
        413,
        "",
    ),
    ("top_k 0", "/v1/tasks/digits/predict?top_k=0", {"json": {"images": [PNG64]}}, 400, "top_k"),
    ("top_k text", None, {"json": {"images": [], "top_k": "two"}}, 400, "top_k"),
]


@pytest.mark.parametrize("name,url,kwargs,status,message", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_4xx_json(client, name, url, kwargs, status, message):
    r = client.post(url or "/v1/tasks/digits/predict", **kwargs)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and message in r.json()["error"]


def test_unknown_routes_and_methods_get_json_errors(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "error" in r.json()
    r = client.get("/v1/tasks/digits/predict")
    assert r.status_code == 405 and "error" in r.json()
    assert client.get("/v1/tasks/nope").status_code == 404


def test_real_uvicorn_and_a_bounded_concurrent_load(evolved):
    app = create_app(evolved, ServeSettings(batch_wait_ms=10))
    images = [_png(i) for i in range(8)]
    want = {
        (task, i): evolved.predict(task, images[i])[0]
        for task in evolved.tasks
        for i in range(len(images))
    }

    with serve_in_thread(app) as url:
        assert httpx.get(f"{url}/healthz").json()["status"] == "ok"

        local, clients = threading.local(), []  # a client per thread: each costs ~50 ms

        def call(k: int) -> tuple[int, bool]:
            if not hasattr(local, "http"):
                local.http = httpx.Client(base_url=url, timeout=30)
                clients.append(local.http)
            task, i = evolved.tasks[k % 2], k % len(images)
            r = local.http.post(
                f"/v1/tasks/{task}/predict", files={"file": ("x.png", images[i], "image/png")}
            )
            ok = r.status_code == 200 and r.json()["predictions"][0] == want[(task, i)]
            return r.status_code, ok

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(call, range(200)))
        for http in clients:
            http.close()
    assert [s for s, _ in results] == [200] * 200
    assert all(same for _, same in results)  # batching never changes a result
    batcher = app.state.batcher
    assert batcher.requests == 200 and batcher.batches < 200  # concurrent requests were batched
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/healthz", timeout=2)
