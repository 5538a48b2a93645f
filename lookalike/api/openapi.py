"""What the OpenAPI document says about the routes, built from the same limits the code enforces."""

from __future__ import annotations

import base64
import io
from typing import Any

from pydantic import BaseModel

from ..search.schema import FILTER_FIELDS, Limits


class ResultModel(BaseModel):
    id: str
    label: str | None
    score: float
    url: str


class SearchResponseModel(BaseModel):
    results: list[ResultModel]
    took_ms: float
    predicted_label: str | None = None  # only with a classifier configured (two-step search)


def search_body(limits: Limits) -> dict[str, Any]:
    """The request body of ``POST /search``, as :func:`lookalike.search.schema.parse_search_request` reads it."""
    return {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "oneOf": [{"required": ["image"], "not": {"required": ["id"]}},
                      {"required": ["id"], "not": {"required": ["image"]}}],
            "properties": {
                "id": {"type": "string", "minLength": 1, "maxLength": 128,
                       "description": "Search with an indexed entry's stored vector instead of an image "
                                      "(more like this); the entry itself is left out of the results"},
                "image": {"type": "string", "format": "byte", "minLength": 1,
                          "description": "Base64 image (JPEG, PNG, WebP, BMP, GIF, TIFF): standard or URL-safe "
                                         "alphabet, padding and line breaks optional, data: URL prefix allowed"},
                "k": {"type": "integer", "minimum": 1, "maximum": limits.k_max, "default": limits.k_default},
                "filter": {"type": "object", "additionalProperties": False,
                           "properties": {f: {"type": "string"} for f in FILTER_FIELDS},
                           "description": "Restrict results, e.g. {\"label\": \"birds\"}"},
            },
            "additionalProperties": False},
            "example": {"image": example_image(), "k": limits.k_default}}},
    }


def example_image() -> str:
    """A real (tiny) PNG, so the documented example is a request that works."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 40, 40)).save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode()


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {
        "error": {"code": "invalid_input", "message": "..."}}}}}


SEARCH_RESPONSES = {400: _error("Invalid input"), 401: _error("Missing or wrong x-api-key"),
                    404: _error("No indexed image with that id (a search by id)"),
                    408: _error("The body did not arrive in time"), 413: _error("Too large"),
                    415: _error("Not JSON"), 503: _error("No index loaded, or busy (see Retry-After)")}
IMAGE_RESPONSES = {200: {"description": "The image file as indexed, or a JPEG thumbnail with ?size=thumb",
                         "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}}},
                   400: _error("Invalid size"), 401: _error("Missing or wrong x-api-key / sig"),
                   404: _error("Unknown id"), 503: _error("No index loaded")}
BROWSE_RESPONSES = {400: _error("Invalid parameter"), 401: _error("Missing or wrong x-api-key"),
                    503: _error("No index loaded")}
HEALTH_RESPONSES = {503: {"description": "No index loaded yet, or a backend is down", "content": {
    "application/json": {"example": {"status": "unavailable", "message": "..."}}}}}


def finish(schema: dict[str, Any], *, key_required: bool) -> dict[str, Any]:
    """What FastAPI's generated document gets wrong for this API: it lists a 422 that is never
    sent (validation errors are 400 here) and knows nothing of the ``x-api-key`` header."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})["ApiKey"] = {
        "type": "apiKey", "in": "header", "name": "x-api-key",
        "description": "Required when the server has LOOKALIKE_API_KEY set"}
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            if path in ("/search", "/images/{id}", "/images", "/labels", "/duplicates"):
                operation["security"] = [{"ApiKey": []}] if key_required else [{"ApiKey": []}, {}]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema
