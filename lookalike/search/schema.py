"""The one request/response shape of ``POST /search`` (local API, Lambda, CLI ``--json``).

Request:  ``{"image": "<base64>", "k": 5, "filter": {"label": "birds"}}``, or ``{"id": "<indexed id>", ...}``
          to search with an entry's stored vector ("more like this": no upload, no model call)
Response: ``{"results": [{"id", "label", "score", "url"}], "took_ms": 12.3}``, plus
``"predicted_label"`` when the service runs a two-step (classify, then search that class) search.

Parsing is plain Python (no pydantic, no numpy) so the Lambda validates with this same code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from .. import limits as _limits
from ..errors import InvalidInput, PayloadTooLarge, UnsupportedMediaType
from ..imaging import decode_base64

FILTER_FIELDS = ("label",)


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int = _limits.MAX_REQUEST_BYTES
    max_image_pixels: int = _limits.MAX_IMAGE_PIXELS
    k_default: int = _limits.K_DEFAULT
    k_max: int = _limits.K_MAX
    decode_budget_pixels: int = _limits.DECODE_BUDGET_PIXELS
    decode_wait_seconds: float = _limits.DECODE_WAIT_SECONDS

    @classmethod
    def from_settings(cls, settings) -> Limits:
        return cls(settings.max_request_bytes, settings.max_image_pixels, settings.k_default, settings.k_max,
                   settings.decode_budget_pixels, settings.decode_wait_seconds)


MAX_ID_LENGTH = 512  # the longest _id OpenSearch accepts, in bytes


@dataclass(frozen=True)
class SearchRequest:
    """A query image (undecoded bytes) or the id of an indexed entry, never both."""

    image: bytes | None = None
    k: int = _limits.K_DEFAULT
    filter: dict[str, Any] | None = None
    id: str | None = None


@dataclass(frozen=True)
class SearchResult:
    id: str
    label: str | None
    score: float
    url: str


@dataclass
class SearchResponse:
    results: list[SearchResult] = field(default_factory=list)
    took_ms: float = 0.0
    predicted_label: str | None = None  # set by a two-step search (a classifier is configured)

    def to_dict(self) -> dict[str, Any]:
        out = {"results": [asdict(r) for r in self.results], "took_ms": round(self.took_ms, 2)}
        if self.predicted_label is not None:
            out["predicted_label"] = self.predicted_label
        return out


def check_content_type(content_type: str | None) -> None:
    media = (content_type or "").split(";")[0].strip().lower()
    if media != "application/json":
        raise UnsupportedMediaType(
            f"Content-Type must be application/json, got {media or 'nothing'!r}.")


def parse_json_body(body: bytes | str, limits: Limits) -> Any:
    if len(body) > limits.max_request_bytes:
        raise PayloadTooLarge(f"Request body is larger than {limits.max_request_bytes} bytes.")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):  # also integers over Python's 4,300-digit limit
        raise InvalidInput("Request body is not valid JSON.") from None
    except RecursionError:  # [[[[... nested deeper than the parser's stack
        raise InvalidInput("Request body is nested too deeply.") from None


MISSING = object()


def parse_k(raw: Any, limits: Limits) -> int:
    """``k`` must be a JSON integer (``5``, or ``5.0``, which JSON Schema counts as one; not a string,
    a boolean or null); absent means the default."""
    if raw is MISSING:
        return limits.k_default
    if isinstance(raw, float) and raw.is_integer() and abs(raw) < 2**53:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InvalidInput(f"'k' must be an integer in 1..{limits.k_max}, got {type(raw).__name__ if raw is not None else 'null'}.")
    if not 1 <= raw <= limits.k_max:
        raise InvalidInput(f"'k' must be in 1..{limits.k_max}, got {raw}.")
    return raw


def parse_filter(raw: Any) -> dict[str, Any] | None:
    if raw is MISSING:
        return None
    if not isinstance(raw, dict):
        raise InvalidInput("'filter' must be an object such as {\"label\": \"birds\"}.")
    unknown = sorted(set(raw) - set(FILTER_FIELDS))
    if unknown:
        raise InvalidInput(f"'filter' supports only {', '.join(FILTER_FIELDS)}; got {', '.join(unknown)}.")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        values = value if isinstance(value, list) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise InvalidInput(f"'filter.{key}' must be a string or a non-empty list of strings.")
        out[key] = value
    return out or None


def parse_search_request(payload: Any, limits: Limits) -> SearchRequest:
    """Validate a decoded JSON payload into a :class:`SearchRequest` (image still undecoded)."""
    if not isinstance(payload, dict):
        raise InvalidInput("Request body must be a JSON object with 'image' (or 'id') and 'k'.")
    unknown = sorted(set(payload) - {"image", "id", "k", "filter"})
    if unknown:
        raise InvalidInput(f"Unknown field(s) {', '.join(map(repr, unknown))}; send 'image' or 'id', 'k' and 'filter'.")
    if ("image" in payload) == ("id" in payload):
        raise InvalidInput("Send exactly one of 'image' (base64-encoded image bytes) and 'id' (an indexed entry)."
                           if "image" in payload else "Missing field 'image' (base64-encoded image bytes) or 'id'.")
    k, flt = parse_k(payload.get("k", MISSING), limits), parse_filter(payload.get("filter", MISSING))
    if "id" in payload:
        return SearchRequest(id=parse_id(payload["id"]), k=k, filter=flt)
    return SearchRequest(image=decode_base64(payload["image"], max_bytes=limits.max_request_bytes), k=k, filter=flt)


def parse_id(raw: Any) -> str:
    if not isinstance(raw, str) or not raw or len(raw.encode("utf-8", "surrogatepass")) > MAX_ID_LENGTH:
        raise InvalidInput(f"'id' must be a non-empty string of at most {MAX_ID_LENGTH} bytes.")
    return raw
