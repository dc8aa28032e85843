"""The HTTP app's OpenAPI schema: what /docs shows and what clients are generated from."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from munet.serve.app import ServeSettings, create_app

SETTINGS = ServeSettings(batch_wait_ms=1, max_images=4, max_upload_bytes=64 * 1024)


@pytest.fixture(scope="module")
def client(synthetic):
    with TestClient(create_app(synthetic, SETTINGS)) as c:
        yield c


@pytest.fixture(scope="module")
def schema(client) -> dict:
    r = client.get("/openapi.json")
    assert r.status_code == 200
    return r.json()


def _ref(response: dict) -> str:
    return response["content"]["application/json"]["schema"]["$ref"]


def test_predict_declares_both_bodies_and_top_k(schema):
    op = schema["paths"]["/v1/tasks/{task}/predict"]["post"]
    content = op["requestBody"]["content"]
    assert op["requestBody"]["required"] is True
    assert set(content) == {"multipart/form-data", "application/json"}
    form = content["multipart/form-data"]["schema"]
    assert form["required"] == ["file"]
    assert form["properties"]["file"]["type"] == "array"
    assert form["properties"]["file"]["maxItems"] == 4  # the app's max_images
    assert form["properties"]["file"]["items"]["format"] == "binary"
    as_json = content["application/json"]["schema"]
    assert as_json["required"] == ["images"]
    assert as_json["properties"]["images"]["items"] == {"type": "string"}
    assert as_json["properties"]["top_k"]["minimum"] == 1
    params = {(p["in"], p["name"]): p for p in op["parameters"]}
    assert set(params) == {("path", "task"), ("query", "top_k")}
    assert params["query", "top_k"]["schema"] == {"type": "integer", "minimum": 1, "default": 1}


def test_predict_documents_its_response_and_every_error(schema):
    op = schema["paths"]["/v1/tasks/{task}/predict"]["post"]
    assert _ref(op["responses"]["200"]) == "#/components/schemas/PredictResponse"
    for code in ("400", "404", "413", "415", "503", "4XX"):
        assert _ref(op["responses"][code]) == "#/components/schemas/Error", code
    assert "422" not in op["responses"]  # validation errors are sent as 400
    models = schema["components"]["schemas"]
    assert models["Error"]["required"] == ["error"]
    assert list(models["Error"]["properties"]) == ["error"]
    items = models["PredictResponse"]["properties"]["predictions"]["items"]
    assert items == {"$ref": "#/components/schemas/Prediction"}
    prediction = models["Prediction"]["properties"]
    assert list(prediction) == ["label", "class_name", "probability", "top_k"]
    assert prediction["top_k"]["items"] == {"$ref": "#/components/schemas/ClassScore"}


def test_the_other_endpoints_name_their_models(schema):
    paths = schema["paths"]
    assert _ref(paths["/healthz"]["get"]["responses"]["200"]) == "#/components/schemas/Health"
    assert _ref(paths["/v1/tasks"]["get"]["responses"]["200"]) == "#/components/schemas/TaskList"
    one = paths["/v1/tasks/{task}"]["get"]["responses"]
    assert _ref(one["200"]) == "#/components/schemas/TaskInfo"
    assert _ref(one["404"]) == "#/components/schemas/Error"
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_response_models_drop_or_change_nothing(client, synthetic):
    # TaskInfo is the contract of MultitaskSystem.info: a field added there must be added here.
    tasks = client.get("/v1/tasks").json()["tasks"]
    assert tasks == [synthetic.info(t) for t in synthetic.tasks]
    assert tasks[0]["test_accuracy"] is None and tasks[0]["spec"] == "synthetic:alpha"
    assert client.get("/healthz").json() == {"status": "ok", "tasks": 4}


def test_the_documented_multipart_form_works(client, synthetic):
    # What "Try it out" in /docs sends: files under "file" and top_k as a form field.
    rng = np.random.default_rng(0)
    images = []
    for _ in range(2):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(buf, "PNG")
        images.append(buf.getvalue())
    r = client.post(
        "/v1/tasks/beta/predict",
        files=[("file", (f"{i}.png", data, "image/png")) for i, data in enumerate(images)],
        data={"top_k": "2"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"task": "beta", "predictions": synthetic.predict("beta", images, top_k=2)}


def test_docs_page_loads_the_schema(client):
    r = client.get("/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text


def test_docs_page_loads_swagger_ui_from_the_server_itself(client):
    pytest.importorskip("fastapi_offline", reason="offline /docs needs fastapi-offline")
    page = client.get("/docs").text
    assert "cdn.jsdelivr.net" not in page
    assert "/docs-assets/swagger-ui-bundle.js" in page and "/docs-assets/swagger-ui.css" in page
    js = client.get("/docs-assets/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text
