"""The HTTP app's typed schema: response models and the declared request bodies of predict.

The predict handler reads the raw request itself (so that an oversized body is refused with 413
before it is parsed, and every error keeps its one-line message); these declarations only tell
``/openapi.json`` (and so ``/docs`` and generated clients) what it accepts and returns.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class Error(BaseModel):
    """Every error response: one line saying what was wrong and how to fix it."""

    error: str = Field(examples=["unknown task 'nope'; this system has: digits"])


class Health(BaseModel):
    status: Literal["ok"]
    tasks: int = Field(description="number of tasks served")


class TaskInfo(BaseModel):
    """Accuracy, parameter counts and structure of one task's model."""

    task: str
    spec: str | None = Field(description="the task spec it was evolved on, e.g. builtin:digits")
    num_classes: int
    classes: list[str] = Field(description="class names; index = label")
    test_accuracy: float | None
    val_accuracy: float | None
    params: int = Field(description="parameters of the task's model")
    accounted_params: int | None = Field(
        description="each component's size divided by the number of tasks using it, summed"
    )
    private_params: int | None = Field(description="parameters no other task uses")
    num_layers: int
    adapter_layers: list[int]
    lowrank_layers: list[int] = Field(
        default_factory=list, description="blocks with a low-rank delta (search: extended)"
    )
    image_size: int = Field(description="input side in pixels; images are resized to it")
    channels: int = Field(description="1 (gray) or 3 (RGB); images are converted to it")
    shared_with: list[str] = Field(description="tasks (or root) it shares components with")
    path_id: int


class TaskList(BaseModel):
    tasks: list[TaskInfo]


class ClassScore(BaseModel):
    label: int = Field(description="class index")
    class_name: str
    probability: float = Field(ge=0, le=1)


class Prediction(ClassScore):
    """The most probable class of one image, and the ``top_k`` most probable, best first."""

    top_k: list[ClassScore]


class PredictResponse(BaseModel):
    task: str
    predictions: list[Prediction] = Field(description="one per image, in request order")


class PredictJson(BaseModel):
    """The JSON body of predict."""

    images: list[str] = Field(
        description="base64 image files (PNG, JPEG, ...), or data: URLs", min_length=1
    )
    top_k: int = Field(1, ge=1, description="overrides the top_k query parameter")


#: The form field name the docs use for files; the endpoint takes files under any field name.
FILE_FIELD = "file"

_TOP_K = {"type": "integer", "minimum": 1, "default": 1}


def predict_openapi(max_images: int, max_upload_bytes: int) -> dict[str, Any]:
    """``openapi_extra`` of predict: its two request bodies and the ``top_k`` query parameter."""
    limits = f"at most {max_images} images and {max_upload_bytes:,} bytes per request"
    binary = {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
    multipart = {
        "title": "PredictMultipart",
        "type": "object",
        "properties": {
            FILE_FIELD: {
                "type": "array",
                "items": binary,
                "minItems": 1,
                "maxItems": max_images,
                "description": f"image files; any field name is accepted ({limits})",
            },
            "top_k": {**_TOP_K, "description": "overrides the top_k query parameter"},
        },
        "required": [FILE_FIELD],
    }
    as_json = PredictJson.model_json_schema()
    as_json["properties"]["images"]["maxItems"] = max_images
    return {
        "parameters": [
            {
                "name": "top_k",
                "in": "query",
                "required": False,
                "schema": dict(_TOP_K),
                "description": "how many most probable classes each prediction lists",
            }
        ],
        "requestBody": {
            "required": True,
            "description": f"one or more images ({limits})",
            "content": {
                "multipart/form-data": {"schema": multipart},
                "application/json": {"schema": as_json},
            },
        },
    }
