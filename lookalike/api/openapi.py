"""What the OpenAPI document says about the routes, built from the same limits the code enforces."""

from __future__ import annotations

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
            "type": "object", "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "byte", "description": "Base64 image (JPEG, PNG, WebP, BMP, GIF, TIFF)"},
                "k": {"type": "integer", "minimum": 1, "maximum": limits.k_max, "default": limits.k_default},
                "filter": {"type": "object", "properties": {f: {"type": "string"} for f in FILTER_FIELDS},
                           "description": "Restrict results, e.g. {\"label\": \"birds\"}"},
            }}}},
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {
        "error": {"code": "invalid_input", "message": "..."}}}}}


SEARCH_RESPONSES = {400: _error("Invalid input"), 401: _error("Missing or wrong x-api-key"),
                    413: _error("Too large"), 415: _error("Not JSON"), 503: _error("No index loaded")}
IMAGE_RESPONSES = {400: _error("Invalid size"), 401: _error("Missing or wrong x-api-key / sig"),
                   404: _error("Unknown id")}
