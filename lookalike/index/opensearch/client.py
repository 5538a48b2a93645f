"""The opensearch-py client (no auth, basic or SigV4) and how its calls are retried and their
errors turned into lookalike errors."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...errors import BackendUnavailable, ConfigError, UpstreamError

logger = logging.getLogger(__name__)

RETRYABLE = {429, 500, 502, 503, 504}


def make_client(url: str, *, auth: str = "none", username: str | None = None, password: str | None = None,
                region: str | None = None, timeout: float = 30.0):
    """An ``opensearchpy.OpenSearch`` client; ``auth`` is ``none``, ``basic`` or ``sigv4``."""
    from opensearchpy import OpenSearch

    kwargs: dict[str, Any] = {"hosts": [url], "timeout": timeout, "max_retries": 0}
    if auth == "basic":
        if not username or password is None:
            raise ConfigError("LOOKALIKE_OPENSEARCH_AUTH=basic needs LOOKALIKE_OPENSEARCH_USERNAME and "
                              "LOOKALIKE_OPENSEARCH_PASSWORD")
        kwargs["http_auth"] = (username, password)
    elif auth == "sigv4":
        import botocore.session
        from opensearchpy import Urllib3AWSV4SignerAuth

        if not region:
            raise ConfigError("LOOKALIKE_OPENSEARCH_AUTH=sigv4 needs the AWS region "
                              "(AWS_REGION or LOOKALIKE_AWS_REGION)")
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise ConfigError("LOOKALIKE_OPENSEARCH_AUTH=sigv4 found no AWS credentials (environment, profile or role)")
        service = "aoss" if ".aoss." in (urlsplit(url).hostname or "") else "es"
        kwargs["http_auth"] = Urllib3AWSV4SignerAuth(credentials, region, service)
    elif auth != "none":
        raise ConfigError(f"LOOKALIKE_OPENSEARCH_AUTH={auth!r} is not valid: must be one of none, basic, sigv4")
    return OpenSearch(**kwargs)


def redact(url: str) -> str:
    """``url`` without user and password, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def reason(info: Any) -> str:
    """The most specific explanation in an OpenSearch error body (root cause, then caused_by)."""
    if isinstance(info, dict) and "error" in info:
        error = info["error"]
        if not isinstance(error, dict):
            return str(error)
        root = (error.get("root_cause") or [error])[0]
        text = root.get("reason") or error.get("reason") or error.get("type", "")
        cause = (error.get("caused_by") or {}).get("reason")
        return f"{text} ({cause})" if cause and cause not in text else text
    if isinstance(info, dict):
        return str(info.get("message") or info.get("Message") or info)
    return "no details" if info in (None, "") else str(info)


class Calls:
    """Runs client calls with retries (exponential backoff on 429/5xx and connection errors) and
    translates what still fails: unreachable or overloaded → 503, refused credentials → config
    error, anything else → 502 with OpenSearch's own reason."""

    def __init__(self, url: str, name: str, *, max_retries: int = 5, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0):
        self.url, self.name = redact(url), name
        self.max_retries, self.initial_backoff, self.max_backoff = max_retries, initial_backoff, max_backoff

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** attempt)

    def __call__(self, what: str, fn, on_retry=None, **kwargs):
        """``fn(**kwargs)``; ``on_retry()`` is called before each retry (bulk reports count them)."""
        from opensearchpy.exceptions import ConnectionError as ConnectError
        from opensearchpy.exceptions import TransportError

        for attempt in range(self.max_retries + 1):
            try:
                return fn(**kwargs)
            except TransportError as exc:
                status = exc.status_code
                retryable = isinstance(exc, ConnectError) or status in RETRYABLE
                if retryable and attempt < self.max_retries:
                    logger.warning("OpenSearch %s failed (%s); retry %d in %.1fs", what, status, attempt + 1,
                                   self.backoff(attempt))
                    if on_retry is not None:
                        on_retry()
                    time.sleep(self.backoff(attempt))
                    continue
                raise self.error(exc, what, retryable) from None
        raise AssertionError("unreachable")

    def error(self, exc, what: str, retryable: bool) -> Exception:
        from opensearchpy.exceptions import ConnectionError as ConnectError

        if isinstance(exc, ConnectError):
            return BackendUnavailable(f"cannot reach OpenSearch at {self.url} to {what}: {exc.error}")
        status, text = exc.status_code, reason(exc.info)
        if status in (401, 403):
            return ConfigError(f"OpenSearch at {self.url} refused to {what} ({status}: {text}); check "
                               "LOOKALIKE_OPENSEARCH_AUTH and the credentials")
        if status == 404 and "index_not_found" in str(exc.error):
            return BackendUnavailable(f"No OpenSearch index {self.name!r} at {self.url}: {text}")
        if retryable:
            return BackendUnavailable(f"OpenSearch at {self.url} could not {what} after {self.max_retries} "
                                      f"retries ({status}: {text})")
        return UpstreamError(f"OpenSearch could not {what}: {text}")
