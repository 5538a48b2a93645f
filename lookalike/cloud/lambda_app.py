"""The Lambda edge: API Gateway REST proxy events → :class:`~lookalike.service.SearchService`.

Routes: ``POST /search`` (the local API's request and response shapes, validated by the same
:mod:`lookalike.schema` and :mod:`lookalike.imaging` code and limits), ``GET /healthz`` and
``OPTIONS`` preflight for any path. The service is a SageMaker embedder + the OpenSearch index
+ presigned S3 URLs, built on first use and kept for the life of the container; if a backend
is unavailable the request answers 503 and the next one tries again. Every error leaves
through :func:`lookalike.errors.to_http`. Logs carry the request id, never the image bytes.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import BackendUnavailable, InvalidInput, LookalikeError, NotFound, Unauthorized, to_http
from ..imaging import decode_image
from ..schema import Limits, SearchRequest, SearchResponse, check_content_type, parse_json_body, parse_search_request
from ..service import SearchService
from .sagemaker_embedder import EncodedImage

logger = logging.getLogger(__name__)

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = "content-type, x-api-key"


class CloudSearchService(SearchService):
    """The search service with the query's original bytes forwarded to the model endpoint.

    The image is decoded here first, so limits and errors are exactly the local API's; the
    endpoint then decodes the same bytes with the same code (see ``sagemaker_embedder``).
    """

    def search(self, request: SearchRequest) -> SearchResponse:
        started = time.perf_counter()
        decode_image(request.image, max_pixels=self.limits.max_image_pixels)
        return self.search_image(EncodedImage(request.image), request.k, request.filter, started=started)


def build_cloud_service(settings, *, s3=None, runtime=None) -> CloudSearchService:
    """SageMaker embedder + OpenSearch index + presigned S3 URLs, as configured in ``settings``."""
    from ..index import open_index
    from .aws import sagemaker_runtime_client
    from .sagemaker_embedder import SageMakerEmbedder
    from .storage import PresignedUrls

    url_for = PresignedUrls.from_settings(settings, s3)
    # One image takes ~0.1 s; give up well before API Gateway's 29 s integration timeout.
    runtime = runtime or sagemaker_runtime_client(settings, read_timeout=20.0)
    index = open_index("opensearch", settings=settings)
    model = getattr(index, "model", None) or {}
    # The index says which model made its vectors; each answer of the endpoint is checked
    # against it, which spares a describe call at cold start.
    embedder = SageMakerEmbedder.from_settings(settings, client=runtime, name=model.get("name"),
                                               dim=index.dim if model.get("name") else None)
    return CloudSearchService(embedder, index, limits=Limits.from_settings(settings), url_for=url_for)


class LambdaApp:
    """``handle(event, context)`` for API Gateway REST (v1) proxy events; HTTP API v2 works too."""

    def __init__(self, settings, *, service_factory: Callable[[Any], SearchService] | None = None,
                 config_error: LookalikeError | None = None):
        self.settings = settings
        self.config_error = config_error
        self.limits = Limits.from_settings(settings) if settings is not None else None
        self._factory = service_factory or build_cloud_service
        self._service: SearchService | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> LambdaApp:
        """The app for this process's environment (``LOOKALIKE_*`` variables, ``AWS_REGION``)."""
        from ..config import Settings

        try:
            settings = Settings.from_env(environ)
        except LookalikeError as exc:  # answer every request with the reason instead of failing init
            logger.error("configuration error: %s", exc.message)
            return cls(None, config_error=exc)
        logging.getLogger("lookalike").setLevel(settings.log_level.upper())
        return cls(settings)

    # ----- entry point -------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        started = time.perf_counter()
        request_id = _request_id(event, context)
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items() if v is not None}
        method = (event.get("httpMethod") or (event.get("requestContext") or {}).get("http", {}).get("method")
                  or "").upper()
        path = _route(event)
        extra: dict[str, str] = {}
        if self.config_error is not None:
            status, body = to_http(self.config_error)
        else:
            try:
                status, body, extra = self._dispatch(method, path, headers, event)
            except Exception as exc:  # noqa: BLE001 - every failure leaves as the one error shape
                status, body = to_http(exc)
        response = self._response(status, body, headers.get("origin"), request_id, extra)
        logger.info("%s %s %d %.1fms request_id=%s", method, path, status, (time.perf_counter() - started) * 1000,
                    request_id)
        return response

    # ----- routes ------------------------------------------------------------------------
    def _dispatch(self, method: str, path: str, headers: dict[str, str], event) -> tuple[int, Any, dict]:
        if method == "OPTIONS":
            return self._preflight(headers)
        if path == "/search":
            if method != "POST":
                return 405, {"error": {"code": "method_not_allowed", "message": "Method Not Allowed"}}, \
                    {"Allow": "POST, OPTIONS"}
            self._require_key(headers)
            check_content_type(headers.get("content-type"))
            # The whole request is validated before any backend is touched: a bad request is a
            # 4xx even while a backend is down.
            request = parse_search_request(parse_json_body(_body_bytes(event), self.limits), self.limits)
            return 200, self.service().search(request).to_dict(), {}
        if path == "/healthz" and method == "GET":
            try:
                service = self.service()
                count = len(service.index)
            except BackendUnavailable as exc:
                return 503, {"status": "unavailable", "message": exc.message}, {}
            return 200, {"status": "ok", "count": count, "model": service.embedder.name,
                         "dim": service.embedder.dim}, {}
        raise NotFound(f"No route for {method} {path}; use POST /search.")

    def _preflight(self, headers: dict[str, str]) -> tuple[int, Any, dict]:
        origin = headers.get("origin")
        if not origin or self._allowed_origin(origin) is None:
            return 403, {"error": {"code": "cors_forbidden",
                                   "message": f"Origin {origin!r} is not allowed (LOOKALIKE_CORS_ORIGINS)."}}, {}
        return 204, None, {"Access-Control-Allow-Methods": ALLOW_METHODS,
                           "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": "600"}

    def service(self) -> SearchService:
        """The search service, built on first use; a failed build is retried by the next request."""
        if self._service is None:
            with self._lock:
                if self._service is None:
                    self._service = self._factory(self.settings)
        return self._service

    def _require_key(self, headers: dict[str, str]) -> None:
        key = self.settings.api_key
        if key and not hmac.compare_digest(headers.get("x-api-key", ""), key):
            raise Unauthorized("Missing or wrong x-api-key header.")

    # ----- responses ---------------------------------------------------------------------
    def _allowed_origin(self, origin: str | None) -> str | None:
        allowed = self.settings.cors_origins if self.settings is not None else ()
        if "*" in allowed:
            return "*"
        return origin if origin and origin in allowed else None

    def _response(self, status: int, body: Any, origin: str | None, request_id: str, extra: dict) -> dict:
        headers = {"X-Request-Id": request_id, **extra}
        allow = self._allowed_origin(origin)
        if allow:
            headers["Access-Control-Allow-Origin"] = allow
            if allow != "*":
                headers["Vary"] = "Origin"
        if body is None:
            return {"statusCode": status, "headers": headers, "body": "", "isBase64Encoded": False}
        headers["Content-Type"] = "application/json"
        return {"statusCode": status, "headers": headers, "body": json.dumps(body, separators=(",", ":")),
                "isBase64Encoded": False}


def _request_id(event: Mapping[str, Any], context: Any) -> str:
    return str((event.get("requestContext") or {}).get("requestId") or getattr(context, "aws_request_id", "")
               or "-")


def _route(event: Mapping[str, Any]) -> str:
    """The route without stage or base path: the resource unless it is a ``{proxy+}`` one."""
    resource = event.get("resource") or ""
    path = resource if resource and "{" not in resource else (event.get("path") or event.get("rawPath") or "/")
    path = "/" + path.strip("/")
    for route in ("/search", "/healthz"):
        if path.endswith(route):
            return route
    return path


def _body_bytes(event: Mapping[str, Any]) -> bytes:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("Request body is marked base64 but is not valid base64.") from None
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)
