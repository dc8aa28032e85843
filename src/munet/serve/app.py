"""The HTTP app: FastAPI over a loaded system, with per-request limits and micro-batching.

Endpoints::

    GET  /healthz                     {"status": "ok", "tasks": N}
    GET  /v1/tasks                    {"tasks": [{task, classes, test_accuracy, params, ...}]}
    GET  /v1/tasks/{task}             one task's info
    POST /v1/tasks/{task}/predict     multipart image file(s), or JSON {"images": [base64, ...]}
                                      ?top_k=K (or "top_k" in the JSON / a form field)

Every error is ``{"error": "<one line>"}`` with a 4xx status: 404 unknown task or route, 400
malformed request, 415 not an image or unsupported content type, 413 body, image or image count
over the limits; 503 for a task whose stored blob is damaged (the other tasks keep working,
``munet check`` names the blob). Needs the ``serve`` extra (fastapi, uvicorn, python-multipart).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser

from munet import __version__
from munet.errors import ConfigError
from munet.serve.batcher import MicroBatcher
from munet.serve.errors import ImageError, ImageTooLargeError
from munet.serve.images import MAX_PIXELS, check_request_pixels, decode_image
from munet.serve.schemas import (
    Error,
    Health,
    PredictResponse,
    TaskInfo,
    TaskList,
    predict_openapi,
)
from munet.serve.system import MultitaskSystem, predictions


@dataclass
class ServeSettings:
    """Limits and batching of the HTTP app."""

    batch_wait_ms: float = 5.0  # how long a batch waits for more requests
    max_batch_images: int = 128  # a batch runs as soon as it holds this many images
    max_images: int = 32  # images per request
    max_upload_bytes: int = 8 * 1024 * 1024  # request body
    max_pixels: int = MAX_PIXELS  # per decoded image
    max_request_pixels: int = 4 * MAX_PIXELS  # all images of one request, from their headers
    max_decodes: int = 2  # images decoded at once, over all requests (bounds peak memory)

    def __post_init__(self) -> None:
        for name in (
            "max_batch_images",
            "max_images",
            "max_upload_bytes",
            "max_pixels",
            "max_request_pixels",
            "max_decodes",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"serve setting {name}={value!r} is invalid; use an integer >= 1")
        if not 0 <= self.batch_wait_ms <= 60_000:
            raise ConfigError(
                f"serve setting batch_wait_ms={self.batch_wait_ms!r} is invalid; use 0..60000"
            )


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _top_k(raw: Any) -> int:
    try:
        k = int(raw)
        if isinstance(raw, bool) or k < 1 or str(k) != str(raw).strip():
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise ApiError(400, f"top_k={raw!r} is invalid; use a positive integer") from None
    return k


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_big = f"request body is over the limit of {limit:,} bytes; send fewer or smaller images"
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


async def _multipart(request: Request, body: bytes, max_images: int) -> tuple[list, dict]:
    """(name, bytes) of every uploaded file, and the plain form fields."""

    async def stream() -> AsyncIterator[bytes]:
        yield body
        yield b""

    parser = MultiPartParser(request.headers, stream(), max_files=max_images + 1, max_fields=64)
    try:
        form = await parser.parse()
    except MultiPartException as err:
        if "files" in str(err).lower():
            raise ApiError(413, f"too many images; send at most {max_images} per request") from None
        raise ApiError(400, f"malformed multipart body: {err}") from None
    files, fields = [], {}
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            files.append((value.filename or key, await value.read()))
        else:
            fields[key] = value
    await form.close()
    return files, fields


def _json_images(body: bytes) -> tuple[list, dict]:
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, 'body is not valid JSON; send {"images": [base64, ...]}') from None
    except RecursionError:  # the C parser bounds its depth by the recursion limit
        raise ApiError(
            400, 'JSON body is nested too deeply; send {"images": [base64, ...]}'
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise ApiError(400, 'JSON body must be an object with a list "images" of base64 strings')
    files = []
    for i, item in enumerate(doc["images"]):
        if not isinstance(item, str):
            raise ApiError(400, f"images[{i}] is a {type(item).__name__}; use a base64 string")
        data = item.split(",", 1)[1] if item.startswith("data:") else item
        try:
            files.append((f"images[{i}]", base64.b64decode(data, validate=True)))
        except (binascii.Error, ValueError):
            raise ApiError(400, f"images[{i}] is not valid base64") from None
    return files, {k: v for k, v in doc.items() if k != "images"}


def _mount_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI served from the Swagger UI 5 files that the ``fastapi-offline``
    package ships (nothing is fetched from a CDN, so it works offline; Swagger UI 4 cannot read
    OpenAPI 3.1); FastAPI's CDN-based page when that package is missing."""
    from pathlib import Path

    from fastapi.openapi.docs import get_swagger_ui_html

    js, css = None, None
    try:
        import fastapi_offline
        from fastapi.staticfiles import StaticFiles

        static = Path(fastapi_offline.__file__).parent / "static"
        app.mount("/docs-assets", StaticFiles(directory=static), name="docs-assets")
        js, css = "/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"
    except ImportError:
        pass
    assets = {"swagger_js_url": js, "swagger_css_url": css} if js else {}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="munet API", **assets)


def create_app(system: MultitaskSystem, settings: ServeSettings | None = None) -> FastAPI:
    """The HTTP app serving ``system`` (loaded once, read-only)."""
    s = settings or ServeSettings()
    batcher = MicroBatcher(
        system.logits_prepared, max_images=s.max_batch_images, wait_s=s.batch_wait_ms / 1000
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await batcher.aclose()

    app = FastAPI(title="munet", version=__version__, lifespan=lifespan, docs_url=None)
    _mount_docs(app)
    app.state.system = system
    app.state.batcher = batcher
    app.state.settings = s
    decode_slots = threading.BoundedSemaphore(s.max_decodes)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, err: ApiError) -> JSONResponse:
        return _error(err.status, err.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"invalid request: {where} {first.get('msg', '')}".strip())

    @app.exception_handler(Exception)
    async def internal_error(request: Request, err: Exception) -> JSONResponse:
        return _error(500, f"internal error ({err.__class__.__name__}); see the server log")

    def check_task(task: str) -> str:
        if task in system.damaged:
            raise ApiError(503, f"task {task!r} cannot be used: {system.damaged[task]}")
        if task not in system.tasks:
            raise ApiError(
                404, f"unknown task {task!r}; this system has: {', '.join(system.tasks)}"
            )
        return task

    # "4XX" documents that every client error is an Error (and keeps FastAPI from listing a
    # 422 that this app never sends: validation errors are 400).
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": Error, "description": why}
        for code, why in (
            (400, "malformed request or top_k"),
            (404, "unknown task"),
            (413, "body, image or image count over the limits"),
            (415, "not an image, or an unsupported content type"),
            (503, "the task's stored blob is damaged; `munet check` names it"),
            ("4XX", "any other client error"),
        )
    }

    def documented(*codes: int | str) -> dict[int | str, dict[str, Any]]:
        return {c: errors[c] for c in (*codes, "4XX")}

    @app.get("/healthz", response_model=Health)
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "tasks": len(system.tasks)}

    @app.get("/v1/tasks", response_model=TaskList)
    async def tasks() -> dict[str, Any]:
        return {"tasks": [system.info(t) for t in system.tasks]}

    @app.get("/v1/tasks/{task}", response_model=TaskInfo, responses=documented(404, 503))
    async def task_info(task: str) -> dict[str, Any]:
        return system.info(check_task(task))

    @app.post(
        "/v1/tasks/{task}/predict",
        response_model=PredictResponse,
        responses=documented(400, 404, 413, 415, 503),
        openapi_extra=predict_openapi(s.max_images, s.max_upload_bytes),
    )
    async def predict(task: str, request: Request) -> dict[str, Any]:
        """Classify one or more images with the task's model.

        Send image files as multipart/form-data (any field name; the docs use ``file``) or
        JSON ``{"images": [base64, ...]}``. ``top_k`` comes from the query, or from a form
        field or JSON key of that name.
        """
        check_task(task)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("multipart/form-data", "application/json"):
            raise ApiError(
                415,
                f"content type {kind or '(none)'!r} is not supported; send multipart/form-data "
                'image files or application/json {"images": [base64, ...]}',
            )
        body = await _read_body(request, s.max_upload_bytes)
        if kind == "multipart/form-data":
            files, fields = await _multipart(request, body, s.max_images)
        else:
            files, fields = _json_images(body)
        del body  # the parsed files hold their own bytes
        top_k = _top_k(fields.get("top_k", request.query_params.get("top_k", 1)))
        if not files:
            raise ApiError(400, "no images in the request; attach image files or base64 images")
        if len(files) > s.max_images:
            raise ApiError(413, f"too many images ({len(files)}); send at most {s.max_images}")

        def prepare() -> Any:
            # Headers first: a request over its pixel budget is refused before any decode.
            # Then one image at a time, shrunk early, so its full-size pixels are freed
            # before the next is decoded; the slots bound decodes across requests.
            check_request_pixels(files, s.max_pixels, s.max_request_pixels)
            size = system.task_info(task).image_size
            parts = []
            while files:
                name, data = files.pop(0)
                with decode_slots:
                    img = decode_image(data, name, s.max_pixels, image_size=size)
                    parts.append(system.prepare(task, [img]))
                    del img
            return parts[0] if len(parts) == 1 else torch.cat(parts)

        try:
            x = await run_in_threadpool(prepare)
        except ImageTooLargeError as err:
            raise ApiError(413, str(err)) from None
        except ImageError as err:
            raise ApiError(415, str(err)) from None
        logits = await batcher.submit(task, x)
        return {"task": task, "predictions": predictions(logits, system.classes(task), top_k)}

    return app


@contextlib.contextmanager
def serve_in_thread(app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run ``app`` on a real uvicorn server in a background thread; yields its base URL.

    ``port=0`` picks a free port (the socket is bound before the server starts, so there is
    no race). The server stops when the block exits.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.005)
        if not server.started:
            raise RuntimeError("uvicorn did not start")
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def serve(
    system: MultitaskSystem,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: ServeSettings | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``system`` over HTTP until interrupted."""
    import uvicorn

    uvicorn.run(create_app(system, settings), host=host, port=port, log_level=log_level)
