"""The one HTTP layer of lookalike, shared by the FastAPI app and the API Gateway/Lambda adapter.

Everything a client can observe apart from the route handlers' own results is decided here:
which methods each route allows (405 with a true ``Allow``), plain and CORS-preflight
``OPTIONS``, CORS headers, the ``x-api-key`` check and per-image signatures, the media type
and size of a request body, ``/healthz``, request ids and the mapping of errors to
``{"error": {"code", "message"}}``. The adapters only translate their framework's request
into :class:`Request` and a :class:`Response` back (powertools' ``ResponseBuilder`` and
``CORSConfig`` in aws-powertools/powertools-lambda-python, ``event_handler/api_gateway.py``,
are the model: one place builds every response).

Standard library only: the Lambda package imports this module.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendUnavailable, LookalikeError, PayloadTooLarge, Unauthorized, error_body, to_http
from ..search.schema import Limits, check_content_type, parse_json_body, parse_search_request

logger = logging.getLogger(__name__)

# Route → the methods it answers besides OPTIONS (which every route answers).
ROUTES: dict[str, tuple[str, ...]] = {"/search": ("POST",), "/healthz": ("GET", "HEAD"),
                                      "/images/{id}": ("GET", "HEAD"), "/images": ("GET", "HEAD"),
                                      "/labels": ("GET", "HEAD"), "/duplicates": ("GET", "HEAD")}
CORS_ALLOW_HEADERS = "content-type, x-api-key"
CORS_MAX_AGE = "600"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


@dataclass
class Response:
    """``body`` is a JSON-serialisable value, or None for an empty body."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def allow_header(route: str) -> str:
    return ", ".join(sorted({*ROUTES[route], "OPTIONS"}))


def error_response(exc: BaseException) -> Response:
    """Any exception as the one error shape (:func:`lookalike.errors.to_http`)."""
    status, body = to_http(exc)
    return Response(status, body, dict(getattr(exc, "headers", None) or {}) if isinstance(exc, LookalikeError) else {})


def image_signature(secret: str, id: str) -> str:
    """An unguessable per-image token, so result URLs work in <img> tags when an API key is set."""
    return hmac.new(secret.encode(), id.encode(), hashlib.sha256).hexdigest()[:24]


def _same(given: str | None, expected: str) -> bool:
    """Constant-time comparison that also takes non-ASCII input (``compare_digest`` on two ``str``
    raises TypeError for it: that would be an unauthenticated 500)."""
    return hmac.compare_digest((given or "").encode("utf-8", "surrogateescape"), expected.encode("utf-8"))


class ServiceHolder:
    """Builds the search service on first use; while that fails (no index yet, a backend down) each
    request answers 503 and the next one tries again."""

    def __init__(self, settings, factory: Callable[[Any], Any]):
        self.settings, self.factory = settings, factory
        self.service = None
        self._lock = threading.Lock()

    def get(self):
        if self.service is None:
            with self._lock:
                if self.service is None:
                    self.service = self.factory(self.settings)
        return self.service


class HttpLayer:
    """The request policy of one deployment, built from its settings."""

    def __init__(self, settings, holder: ServiceHolder):
        self.settings, self.holder = settings, holder
        self.limits = Limits.from_settings(settings)
        self.origins = tuple(settings.cors_origins)

    # ----- before the route ---------------------------------------------------------------
    def early(self, method: str, route: str | None, headers: Mapping[str, str]) -> Response | None:
        """The answer decided without the route's handler: OPTIONS, or 405. ``headers`` lower-case."""
        if route is None:
            return None
        if method == "OPTIONS":
            return self.options(route, headers)
        if method not in ROUTES[route]:
            wanted = " or ".join(ROUTES[route])
            path = route.replace("{id}", "ID")
            return Response(405, error_body("method_not_allowed", f"Use {wanted} {path}."),
                            {"Allow": allow_header(route)})
        return None

    def options(self, route: str, headers: Mapping[str, str]) -> Response:
        """A CORS preflight (Origin + Access-Control-Request-Method) or a plain OPTIONS (RFC 9110)."""
        origin = headers.get("origin")
        if not origin or "access-control-request-method" not in headers:
            return Response(204, None, {"Allow": allow_header(route)})
        if self.allowed_origin(origin) is None:
            return Response(403, error_body("cors_forbidden",
                                            f"Origin {origin!r} is not allowed (LOOKALIKE_CORS_ORIGINS)."))
        return Response(204, None, {"Allow": allow_header(route),
                                    "Access-Control-Allow-Methods": ", ".join(ROUTES[route]),
                                    "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                                    "Access-Control-Max-Age": CORS_MAX_AGE})

    def require_key(self, headers: Mapping[str, str]) -> None:
        key = self.settings.api_key
        if key and not _same(headers.get("x-api-key"), key):
            raise Unauthorized("Missing or wrong x-api-key header.")

    def require_key_or_signature(self, headers: Mapping[str, str], id: str, sig: str | None) -> None:
        key = self.settings.api_key
        if key and not (sig and _same(sig, image_signature(key, id))):
            self.require_key(headers)

    def check_body_headers(self, headers: Mapping[str, str]) -> None:
        """Media type and declared size, checked before a byte of the body is read."""
        check_content_type(headers.get("content-type"))
        declared = headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > self.limits.max_request_bytes:
            raise PayloadTooLarge(f"Request body is larger than {self.limits.max_request_bytes} bytes.")

    # ----- routes -------------------------------------------------------------------------
    def search(self, body: bytes | str) -> dict:
        """``POST /search``: the whole request is validated before any backend is touched, so a bad
        request is a 4xx even while a backend is down."""
        request = parse_search_request(parse_json_body(body, self.limits), self.limits)
        return self.holder.get().search(request).to_dict()

    def healthz(self) -> Response:
        try:
            service = self.holder.get()
            count = len(service.index)
        except BackendUnavailable as exc:
            return Response(503, {"status": "unavailable", "message": exc.message}, {"Retry-After": "5"})
        return Response(200, {"status": "ok", "count": count, "model": service.embedder.name,
                              "dim": service.embedder.dim})

    # ----- after the route ----------------------------------------------------------------
    def allowed_origin(self, origin: str | None) -> str | None:
        if "*" in self.origins:
            return "*"
        return origin if origin and origin in self.origins else None

    def finish_headers(self, headers: Mapping[str, str], request_id: str) -> dict[str, str]:
        """CORS and request-id headers every response carries (errors too, so browsers can read them)."""
        out = {"X-Request-Id": request_id}
        allow = self.allowed_origin(headers.get("origin"))
        if allow:
            out["Access-Control-Allow-Origin"] = allow
            if allow != "*":
                out["Vary"] = "Origin"
        return out


def request_id(sent: str | None, fallback: str | None = None) -> str:
    """The client's ``x-request-id`` when it is sane, else ``fallback`` or a fresh one."""
    if sent and _REQUEST_ID.fullmatch(sent):
        return sent
    return fallback or uuid.uuid4().hex[:16]


__all__ = ["ROUTES", "Response", "HttpLayer", "ServiceHolder", "LookalikeError", "error_response",
           "image_signature", "request_id", "allow_header"]
