"""A strict in-memory stand-in for the OpenSearch REST subset lookalike uses (k-NN plugin included).

No OpenSearch server can be installed on the build machines, so the OpenSearch backend is
tested against this: real HTTP on 127.0.0.1, real opensearch-py on the client side, and a
server written from the OpenSearch documentation that *rejects* what OpenSearch rejects
(each rejection has a test in ``tests/support/test_opensearch_standin.py``). Search is exact
brute force, where a real cluster's HNSW is approximate.

Usage::

    with OpenSearchStandin() as server:          # or the ``opensearch_standin`` fixture
        client = OpenSearch(server.url)
        ...
        server.requests                         # what arrived (method, path, params, headers, body)
        server.fail(r"POST /_bulk", 429, times=2)  # the next 2 bulk requests answer 429
        server.reject_bulk_items(3)             # the next 3 bulk index items answer 429
        server.delay(r"POST /imgs/_search", 2.0)  # the next search is answered 2 s late
        server.knn_searches                     # engine, k and effective ef_search of each k-NN query

    OpenSearchStandin(version="2.11.0")        # the k-NN rules of that release (see versions.py)

    OpenSearchStandin(auth=BasicAuth({"admin": "pw"}))                       # HTTP basic
    OpenSearchStandin(auth=SigV4Auth("AKID", "SECRET", "eu-west-1", "es"))   # verified SigV4

Standalone: ``PYTHONPATH=tests/support python -m opensearch_standin --port 9200``.

Implemented: ``GET /``, ``HEAD|GET|PUT|DELETE /{index}``, ``GET /{index}/_mapping``,
``POST /{index}/_refresh``, ``POST [/{index}]/_bulk`` (index, create, delete),
``GET|POST /{index}/_search`` (``knn`` with ``filter``; ``match_all``, ``term``, ``terms``,
``ids``, ``exists``, ``bool``; ``size``/``from``, ``sort`` + ``search_after``, ``_source``),
``/{index}/_count``, ``[/{index}]/_mget``, ``GET|HEAD|PUT|DELETE /{index}/_doc/{id}``.
Valid OpenSearch outside that subset answers ``standin_unsupported_exception`` (400) rather
than being guessed at.

Where the k-NN plugin's behaviour changed between releases (messages, ``method_parameters``,
filters, scores, engines), the stand-in follows the ``version`` it is started with; each rule
cites the plugin's source (``opensearch-project/k-NN`` at that release branch) where it is
implemented, and ``tests/support/test_opensearch_standin.py`` holds one conformance case per rule.
"""

from __future__ import annotations

import re
import threading

import pytest

from .auth import BasicAuth, SigV4Auth
from .errors import ApiError
from .server import Recorded, Router, serve
from .store import Cluster
from .versions import Version

__all__ = ["OpenSearchStandin", "BasicAuth", "SigV4Auth", "Recorded", "opensearch_standin"]

DEFAULT_VERSION = "2.19.1"


class OpenSearchStandin:
    """The stand-in server; ``url`` is valid between :meth:`start` and :meth:`stop`."""

    def __init__(self, *, version: str = DEFAULT_VERSION, auth: BasicAuth | SigV4Auth | None = None,
                 host: str = "127.0.0.1", port: int = 0, distribution: str | None = "opensearch",
                 tagline: str = "The OpenSearch Project: https://opensearch.org/"):
        self.version = version
        self.auth = auth
        self.host, self._port = host, port
        self.lock = threading.RLock()
        self.cluster = Cluster(Version.parse(version))
        self.router = Router(self.cluster, version, distribution, tagline)
        self.requests: list[Recorded] = []
        self._faults: list[list] = []
        self._delays: list[list] = []
        self._reject_items = [0]
        self._stopping = threading.Event()  # wakes delayed requests when the server stops
        self._server = self._thread = None

    # ----- lifecycle ----------------------------------------------------------------------
    def start(self) -> OpenSearchStandin:
        self._stopping.clear()
        self._server, self._thread = serve(self, self.host, self._port)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)
            self._server = self._thread = None

    def __enter__(self) -> OpenSearchStandin:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ----- test hooks ---------------------------------------------------------------------
    def fail(self, pattern: str, status: int, *, times: int = 1, type: str | None = None,
             reason: str = "injected failure") -> None:
        """The next ``times`` requests whose ``"METHOD /path"`` matches ``pattern`` answer ``status``."""
        # 429 is how OpenSearch says a thread pool or indexing-pressure limit rejected the work (see
        # errors.rejected); 503 stands for a cluster block, e.g. no elected cluster manager.
        kind = type or {429: "rejected_execution_exception", 503: "cluster_block_exception"}.get(status, "exception")
        with self.lock:
            self._faults.append([re.compile(pattern), times, ApiError(status, kind, reason)])

    def reject_bulk_items(self, count: int) -> None:
        """The next ``count`` bulk index/create items answer 429 ``rejected_execution_exception``."""
        with self.lock:
            self._reject_items[0] += count

    def delay(self, pattern: str, seconds: float, *, times: int = 1) -> None:
        """The next ``times`` requests matching ``pattern`` are answered ``seconds`` late."""
        with self.lock:
            self._delays.append([re.compile(pattern), times, float(seconds)])

    @property
    def knn_searches(self) -> list[dict]:
        """Per k-NN query: index, field, engine, k, method_parameters, segments, effective ef_search."""
        return self.cluster.knn_searches

    def _take_delay(self, method: str, path: str) -> float:
        with self.lock:
            for entry in self._delays:
                if entry[1] > 0 and entry[0].search(f"{method} {path}"):
                    entry[1] -= 1
                    return entry[2]
        return 0.0

    def _take_fault(self, method: str, path: str) -> ApiError | None:
        for fault in self._faults:
            if fault[1] > 0 and fault[0].search(f"{method} {path}"):
                fault[1] -= 1
                return fault[2]
        return None

    def requests_to(self, pattern: str) -> list[Recorded]:
        """Recorded requests whose ``"METHOD /path"`` matches ``pattern``."""
        rx = re.compile(pattern)
        return [r for r in list(self.requests) if rx.search(f"{r.method} {r.path}")]

    def reset(self) -> None:
        """Drop every index, recorded request and pending fault."""
        with self.lock:
            self.cluster.indices.clear()
            self.requests.clear()
            self._faults.clear()
            self._delays.clear()
            self.cluster.knn_searches.clear()
            self._reject_items[0] = 0


@pytest.fixture
def opensearch_standin():
    """A running :class:`OpenSearchStandin` (no auth); stopped after the test."""
    with OpenSearchStandin() as server:
        yield server
