"""The opensearch-py client (no auth, basic or SigV4), how its calls are retried, bounded in time
and their errors turned into lookalike errors, and what lookalike needs of the cluster behind it.

The cluster's version is read once (``GET /``, :func:`read_cluster`); versions, from the k-NN
plugin's code (opensearch-project/k-NN):

- 2.9: filters inside a faiss k-NN search (``ENGINES_SUPPORTING_FILTERS`` gains FAISS in
  src/main/java/org/opensearch/knn/index/util/KNNEngine.java); lookalike's label filter and
  two-step search rely on it, so older clusters are refused.
- 2.13: ``innerproduct`` on the lucene engine; ``LOOKALIKE_OPENSEARCH_ENGINE=lucene`` needs it.
- 2.16: ``method_parameters.ef_search`` in the query (index/query/request/MethodParameter.java,
  ``Version.V_2_16_0``); older clusters get the fallback in :func:`~.mapping.knn_query`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ...config import opensearch_serverless_problem
from ...errors import BackendUnavailable, ConfigError, UpstreamError

logger = logging.getLogger(__name__)

RETRYABLE = {429, 500, 502, 503, 504}
DEFAULT_TIMEOUT = 8.0  # seconds per request, as Settings.opensearch_timeout (which says why)
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("opensearch_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every OpenSearch call made inside the block, retries included, to ``seconds`` from now.

    For a caller with a hard limit of its own, e.g. the Lambda handler with
    ``context.get_remaining_time_in_millis()``: past the deadline a call fails with
    :class:`BackendUnavailable` (503) instead of the function being killed.
    """
    token = _DEADLINE.set(time.monotonic() + max(0.0, float(seconds)))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def make_client(url: str, *, auth: str = "none", username: str | None = None, password: str | None = None,
                region: str | None = None, timeout: float = DEFAULT_TIMEOUT):
    """An ``opensearchpy.OpenSearch`` client; ``auth`` is ``none``, ``basic`` or ``sigv4``; ``timeout``
    is the seconds one request may take (a call may pass less, see :class:`Calls`)."""
    from opensearchpy import OpenSearch

    problem = opensearch_serverless_problem(url)  # also refused when Settings are read
    if problem:
        raise ConfigError(f"LOOKALIKE_OPENSEARCH_URL={redact(url)!r} is not valid: {problem}")

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
        kwargs["http_auth"] = Urllib3AWSV4SignerAuth(credentials, region, "es")
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
    translates what still fails: unreachable, overloaded or too slow → 503, refused credentials →
    config error, anything else → 502 with OpenSearch's own reason.

    Each request may take ``timeout`` seconds, less if a :func:`deadline` is nearer; no retry is
    started that could not finish before the deadline.
    """

    def __init__(self, url: str, name: str, *, max_retries: int = 5, initial_backoff: float = 0.5,
                 max_backoff: float = 30.0, timeout: float = DEFAULT_TIMEOUT):
        self.url, self.name = redact(url), name
        self.max_retries, self.initial_backoff, self.max_backoff = max_retries, initial_backoff, max_backoff
        self.timeout = timeout

    def backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** attempt)

    def __call__(self, what: str, fn, on_retry=None, timeout: float | None = None, **kwargs):
        """``fn(**kwargs)``; ``on_retry()`` is called before each retry (bulk reports count them);
        ``timeout`` overrides the per-request timeout for this call."""
        from opensearchpy.exceptions import ConnectionError as ConnectError
        from opensearchpy.exceptions import TransportError

        limit = self.timeout if timeout is None else timeout
        ends = _DEADLINE.get()
        for attempt in range(self.max_retries + 1):
            budget = limit if ends is None else min(limit, ends - time.monotonic())
            if budget <= 0:
                raise BackendUnavailable(f"OpenSearch at {self.url} could not {what} in the time left "
                                         "for this request") from None
            try:
                return fn(request_timeout=budget, **kwargs)
            except TransportError as exc:
                status = exc.status_code
                retryable = isinstance(exc, ConnectError) or status in RETRYABLE
                pause = self.backoff(attempt)
                in_time = ends is None or time.monotonic() + pause < ends
                if retryable and attempt < self.max_retries and in_time:
                    logger.warning("OpenSearch %s failed (%s); retry %d in %.1fs", what, status, attempt + 1, pause)
                    if on_retry is not None:
                        on_retry()
                    time.sleep(pause)
                    continue
                raise self.error(exc, what, retryable, budget, attempt) from None
        raise AssertionError("unreachable")

    def error(self, exc, what: str, retryable: bool, budget: float | None = None,
              retries: int | None = None) -> Exception:
        from opensearchpy.exceptions import ConnectionError as ConnectError
        from opensearchpy.exceptions import ConnectionTimeout

        if isinstance(exc, ConnectionTimeout):
            waited = f" within {budget:.1f}s" if budget is not None else ""
            return BackendUnavailable(f"OpenSearch at {self.url} did not answer{waited} to {what} "
                                      "(LOOKALIKE_OPENSEARCH_TIMEOUT)")
        if isinstance(exc, ConnectError):
            return BackendUnavailable(f"cannot reach OpenSearch at {self.url} to {what}: {exc.error}")
        status, text = exc.status_code, reason(exc.info)
        if status in (401, 403):
            return ConfigError(f"OpenSearch at {self.url} refused to {what} ({status}: {text}); check "
                               "LOOKALIKE_OPENSEARCH_AUTH and the credentials")
        if status == 404 and "index_not_found" in str(exc.error):
            return BackendUnavailable(f"No OpenSearch index {self.name!r} at {self.url}: {text}")
        if retryable:
            done = self.max_retries if retries is None else retries
            return BackendUnavailable(f"OpenSearch at {self.url} could not {what} after {done} "
                                      f"retries ({status}: {text})")
        return UpstreamError(f"OpenSearch could not {what}: {text}")


# ----- the cluster ---------------------------------------------------------------------------
FILTERED_FAISS = (2, 9)
LUCENE_INNER_PRODUCT = (2, 13)
METHOD_PARAMETERS = (2, 16)

# Every request the Lambda's query path sends, as (what, HTTP method, path pattern). Opening the
# index (once per container), searching by image or by id, and GET /healthz. A test runs that path
# against the stand-in and checks it sends exactly these, so the search function's IAM policy
# (terraform/modules/search_api/iam.tf) can be checked against this list instead of a guess.
QUERY_REQUESTS: tuple[tuple[str, str, str], ...] = (
    ("read the cluster version", "GET", "/"),
    ("check the index", "HEAD", "/{index}"),
    ("read the mapping", "GET", "/{index}/_mapping"),
    ("search", "POST", "/{index}/_search"),
    ("get vectors (search by id)", "POST", "/{index}/_mget"),
    ("count (GET /healthz)", "POST", "/{index}/_count"),
)


def query_http_methods() -> tuple[str, ...]:
    """The HTTP methods of :data:`QUERY_REQUESTS`, sorted: ``("GET", "HEAD", "POST")``."""
    return tuple(sorted({method for _, method, _ in QUERY_REQUESTS}))


def query_iam_actions() -> tuple[str, ...]:
    """The ``es:ESHttp*`` actions the query path needs (Amazon OpenSearch Service names one per method)."""
    return tuple(f"es:ESHttp{method.capitalize()}" for method in query_http_methods())


@dataclass(frozen=True)
class Cluster:
    """The version ``GET /`` reported; ``version`` is None when it cannot be trusted (see :func:`read_cluster`)."""

    version: tuple[int, int, int] | None
    number: str = "unknown"

    def at_least(self, feature: tuple[int, int]) -> bool:
        return self.version is not None and self.version[:2] >= feature

    @property
    def method_parameters(self) -> bool:
        return self.at_least(METHOD_PARAMETERS)

    def check(self, engine: str, url: str) -> None:
        """Refuse a cluster too old for ``engine`` with what to do about it."""
        if self.version is None:
            return
        if engine == "lucene" and not self.at_least(LUCENE_INNER_PRODUCT):
            raise ConfigError(f"OpenSearch {self.number} at {url} has no inner product on the lucene engine "
                              "(it came in 2.13): use LOOKALIKE_OPENSEARCH_ENGINE=faiss or upgrade the cluster")
        if engine == "faiss" and not self.at_least(FILTERED_FAISS):
            raise ConfigError(f"OpenSearch {self.number} at {url} cannot filter a faiss k-NN search (that came "
                              "in 2.9), which label filters and two-step search need: upgrade the cluster to "
                              "2.9 or newer (Terraform: engine_version = \"OpenSearch_2.17\")")


def read_cluster(info: Any, url: str) -> Cluster:
    """The :class:`Cluster` behind a ``GET /`` answer; refuses anything but OpenSearch."""
    info = info if isinstance(info, dict) else {}
    version = info.get("version") or {}
    number, distribution = str(version.get("number", "")), version.get("distribution")
    if distribution != "opensearch":
        # Compatibility mode (compatibility.override_main_response_version, a checkbox on Amazon
        # OpenSearch Service) reports 7.10.2 and drops "distribution" (opensearch-project/OpenSearch
        # pull request #898) but keeps OpenSearch's tagline; Elasticsearch and Open Distro lack both.
        if number.startswith("7.10.") and "OpenSearch" in str(info.get("tagline", "")):
            logger.warning("OpenSearch at %s is in compatibility mode (reports %s): its real version is "
                           "unknown, so every query takes the form 2.9 understands", url, number)
            return Cluster(None, f"{number} (compatibility mode)")
        raise ConfigError(f"{url} is not OpenSearch (it reports version {number or '?'} without "
                          "distribution \"opensearch\"): lookalike needs OpenSearch 2.9 or newer with the k-NN plugin")
    try:
        parts = tuple(int(p) for p in number.split("-")[0].split("."))[:3]
    except ValueError:
        parts = ()
    if len(parts) < 2:
        logger.warning("OpenSearch at %s reports version %r; treating it as unknown", url, number)
        return Cluster(None, number or "unknown")
    return Cluster((parts + (0, 0))[:3], number)
