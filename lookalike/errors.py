"""Domain errors and their one mapping to HTTP status codes and JSON bodies.

The local API and the Lambda handler both answer errors through :func:`to_http`, so a
client sees the same ``{"error": {"code", "message"}}`` shape and status everywhere.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class LookalikeError(Exception):
    """Base class: an error whose message is safe to show to a client."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidInput(LookalikeError):
    status = 400
    code = "invalid_input"


class BadRequest(LookalikeError):
    """Bytes that cannot be taken as one HTTP/1.1 request; the connection closes after the answer."""

    status = 400
    code = "bad_request"
    headers = {"Connection": "close"}


class Unauthorized(LookalikeError):
    status = 401
    code = "unauthorized"


class NotFound(LookalikeError):
    status = 404
    code = "not_found"


class PayloadTooLarge(LookalikeError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(LookalikeError):
    status = 415
    code = "unsupported_media_type"


class UpstreamError(LookalikeError):
    """A backend (model endpoint, search cluster) answered with an error."""

    status = 502
    code = "bad_gateway"


class BackendUnavailable(LookalikeError):
    """A backend could not be reached or is not ready (index missing, cluster down)."""

    status = 503
    code = "backend_unavailable"


class RequestTimeout(LookalikeError):
    """The client did not send its request within the server's deadline."""

    status = 408
    code = "request_timeout"
    headers = {"Connection": "close"}  # the rest of the request may still be on its way


class Overloaded(BackendUnavailable):
    """Too much work in flight (e.g. large images being decoded); the client should retry soon."""

    code = "overloaded"

    def __init__(self, message: str, *, retry_after: int = 2):
        super().__init__(message)
        self.headers = {"Retry-After": str(retry_after)}


class ConfigError(LookalikeError):
    """A setting has a value that cannot be used; the message names the key and the value."""

    status = 500
    code = "config_error"


def error_body(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


def to_http(exc: BaseException) -> tuple[int, dict]:
    """Map any exception to ``(status, body)``; unknown ones become a generic 500 and are logged."""
    if isinstance(exc, LookalikeError):
        if exc.status >= 500:
            logger.warning("%s: %s", type(exc).__name__, exc.message)
        return exc.status, error_body(exc.code, exc.message)
    logger.error("unhandled error", exc_info=exc)
    return 500, error_body("internal_error", "Internal server error.")
