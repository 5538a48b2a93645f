"""The Lambda adapter: API Gateway REST proxy events → :mod:`lookalike.api.http` → the cloud service.

Routes are the local API's (``POST /search``, ``GET``/``HEAD /healthz``, ``OPTIONS`` for any route),
answered by the same shared layer, so a client cannot tell the two apart. The service is a
SageMaker embedder + the OpenSearch index + presigned S3 URLs
(:func:`lookalike.cloud.service.build_cloud_service`), built on first use and kept for the life
of the container; if a backend is unavailable the request answers 503 and the next one tries
again. Logs carry the request id, never the image bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidInput, LookalikeError, NotFound
from .http import ROUTES, HttpLayer, Response, ServiceHolder, error_response, request_id

logger = logging.getLogger(__name__)


def _cloud_service(settings):
    from ..cloud.service import build_cloud_service

    return build_cloud_service(settings)


class LambdaApp:
    """``handle(event, context)`` for API Gateway REST (v1) proxy events; HTTP API v2 works too."""

    def __init__(self, settings, *, service_factory: Callable[[Any], Any] | None = None,
                 config_error: LookalikeError | None = None):
        self.settings = settings
        self.config_error = config_error
        if settings is not None:
            self.holder = ServiceHolder(settings, service_factory or _cloud_service)
            self.http = HttpLayer(settings, self.holder)
            self.limits = self.http.limits

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
        from .. import memory

        memory.pin_mmap_threshold()  # a large image's memory goes back after the request
        return cls(settings)

    def service(self):
        """The search service, built on first use; a failed build is retried by the next request."""
        return self.holder.get()

    # ----- entry point -------------------------------------------------------------------
    def handle(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        started = time.perf_counter()
        rid = request_id(None, str((event.get("requestContext") or {}).get("requestId")
                                   or getattr(context, "aws_request_id", "") or "") or None)
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items() if v is not None}
        method = (event.get("httpMethod") or (event.get("requestContext") or {}).get("http", {}).get("method")
                  or "").upper()
        path = _route(event)
        if self.config_error is not None:
            response, extra = error_response(self.config_error), {"X-Request-Id": rid}
        else:
            try:
                with _time_left(context):
                    response = self._dispatch(method, path, headers, event)
            except Exception as exc:  # noqa: BLE001 - every failure leaves as the one error shape
                response = error_response(exc)
            extra = self.http.finish_headers(headers, rid)
        if method == "HEAD":
            response.body = None
        logger.info("%s %s %d %.1fms request_id=%s", method, path, response.status,
                    (time.perf_counter() - started) * 1000, rid)
        return _proxy_result(response, extra)

    def _dispatch(self, method: str, path: str, headers: dict[str, str], event) -> Response:
        route = path if path in ROUTES else None
        early = self.http.early(method, route, headers)
        if early is not None:
            return early
        if route == "/search":
            self.http.require_key(headers)
            self.http.check_body_headers(headers)
            return Response(200, self.http.search(_body_bytes(event)))
        if route == "/healthz":
            return self.http.healthz()
        raise NotFound(f"No route for {method} {path}; use POST /search.")


def _time_left(context):
    """Bound OpenSearch calls (retries included) by the invocation's remaining time, less a second
    to answer: a slow cluster then ends in a clean 503, not in the function being killed."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return contextlib.nullcontext()
    from ..index.opensearch import deadline

    return deadline(max(0.5, remaining() / 1000 - 1.0))


def _proxy_result(response: Response, extra: dict[str, str]) -> dict[str, Any]:
    headers = {**response.headers, **extra}
    if response.body is None:
        return {"statusCode": response.status, "headers": headers, "body": "", "isBase64Encoded": False}
    headers["Content-Type"] = "application/json"
    return {"statusCode": response.status, "headers": headers,
            "body": json.dumps(response.body, separators=(",", ":")), "isBase64Encoded": False}


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
