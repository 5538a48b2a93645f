"""OpenSearch-shaped errors: ``{"error": {"root_cause": [...], "type", "reason"}, "status"}``.

Shapes follow real OpenSearch 2.19 responses: a search that fails while building the query is
a ``search_phase_execution_exception`` ("all shards failed") whose ``root_cause[0]`` holds the
explanation; a mapping error is a ``mapper_parsing_exception`` with the explanation in
``caused_by``; a failed ``_bulk`` item carries ``type``/``reason``/``caused_by`` but no
``root_cause``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error the server answers with ``status`` and an OpenSearch error body."""

    def __init__(self, status: int, type: str, reason: str, *, caused_by: dict | None = None,
                 root_cause: list[dict] | None = None, extra: dict | None = None):
        super().__init__(f"[{type}] {reason}")
        self.status, self.type, self.reason = status, type, reason
        self.caused_by, self.extra = caused_by, dict(extra or {})
        self._root_cause = root_cause

    def detail(self) -> dict[str, Any]:
        """The error object as it appears in a bulk item (no ``root_cause``)."""
        out: dict[str, Any] = {"type": self.type, "reason": self.reason, **self.extra}
        if self.caused_by:
            out["caused_by"] = self.caused_by
        return out

    def body(self) -> dict[str, Any]:
        root = self._root_cause
        if root is None:
            root = [{"type": self.type, "reason": self.reason, **self.extra}]
        return {"error": {"root_cause": root, **self.detail()}, "status": self.status}


def bad_request(reason: str, type: str = "illegal_argument_exception") -> ApiError:
    return ApiError(400, type, reason)


def parsing(reason: str) -> ApiError:
    return ApiError(400, "parsing_exception", reason)


def index_not_found(index: str) -> ApiError:
    return ApiError(404, "index_not_found_exception", f"no such index [{index}]",
                    extra={"index": index, "resource.type": "index_or_alias", "resource.id": index,
                           "index_uuid": "_na_"})


def mapper_parsing(reason: str, cause: str | None = None, cause_type: str = "illegal_argument_exception") -> ApiError:
    """A mapping error at index creation (``Failed to parse mapping [_doc]: ...``)."""
    if cause is None:
        return ApiError(400, "mapper_parsing_exception", reason)
    return ApiError(400, "mapper_parsing_exception", f"{reason}: {cause}",
                    root_cause=[{"type": "mapper_parsing_exception", "reason": f"{reason}: {cause}"}],
                    caused_by={"type": cause_type, "reason": cause})


def shard_failure(index: str, reason: str, type: str = "illegal_argument_exception") -> ApiError:
    """A search that fails on every shard with ``type`` as is (a bad sort, a too large window).

    Shape: opensearch-project/OpenSearch, server/src/main/java/org/opensearch/action/search/
    SearchPhaseExecutionException.java: ``root_cause`` is guessed from the shard failures, the
    failures are listed under ``failed_shards`` and, when all shards failed, there is no top-level
    ``caused_by`` (``toXContent`` passes ``super.getCause()``, which is null).
    """
    root = {"type": type, "reason": reason, "index": index, "index_uuid": "standin"}
    return _all_shards_failed(index, root, root)


def query_failure(index: str, reason: str, cause_type: str = "illegal_argument_exception") -> ApiError:
    """A query that throws while it is built on the shard (a k-NN field check, a wrong dimension).

    opensearch-project/OpenSearch, server/src/main/java/org/opensearch/index/query/QueryShardContext.java
    ``toQuery``: anything but a QueryShardException or ParsingException is wrapped as
    ``QueryShardException("failed to create query: {}", e, e.getMessage())``, so the root cause is
    a ``query_shard_exception`` and the k-NN plugin's own exception (k-NN 2.19,
    src/main/java/org/opensearch/knn/index/query/KNNQueryBuilder.java ``doToQuery`` throws
    IllegalArgumentException) is its ``caused_by``.
    """
    root = {"type": "query_shard_exception", "reason": f"failed to create query: {reason}", "index": index,
            "index_uuid": "standin"}
    return _all_shards_failed(index, root, {**root, "caused_by": {"type": cause_type, "reason": reason}})


def _all_shards_failed(index: str, root: dict, shard_reason: dict) -> ApiError:
    return ApiError(400, "search_phase_execution_exception", "all shards failed", root_cause=[root],
                    extra={"phase": "query", "grouped": True,
                           "failed_shards": [{"shard": 0, "index": index, "node": "standin-node",
                                              "reason": shard_reason}]})


def rejected(reason: str) -> ApiError:
    """429 ``rejected_execution_exception``: OpenSearch's OpenSearchRejectedExecutionException, whose
    name loses its prefix (opensearch-project/OpenSearch, libs/core/src/main/java/org/opensearch/
    OpenSearchException.java ``getExceptionName`` strips "OpenSearch"); Elasticsearch called it
    ``es_rejected_execution_exception``."""
    return ApiError(429, "rejected_execution_exception", reason)


def unsupported(what: str) -> ApiError:
    """Valid OpenSearch that this stand-in does not implement: fail loudly rather than guess."""
    return ApiError(400, "standin_unsupported_exception",
                    f"the OpenSearch stand-in does not implement {what}")
