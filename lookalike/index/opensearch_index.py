"""Index on an OpenSearch k-NN cluster (Amazon OpenSearch Service or self-managed).

One document per entry: ``_id`` = the entry id, ``vector`` (``knn_vector``, HNSW, space
``innerproduct`` so scores equal FAISS's inner products on unit vectors), ``id`` and the
metadata fields (strings mapped as ``keyword`` so filters are exact). The model that made
the vectors is kept in the mapping's ``_meta`` for the service's compatibility check.

Writes go through ``_bulk`` in batches bounded by count and bytes, retried with exponential
backoff on 429/5xx and connection errors; reads after writes refresh first, because OpenSearch
search is near-real-time. Search uses the k-NN *efficient filter* (``knn.vector.filter``).

No numpy at import time or on the search path: the Lambda package ships without it, so
vectors may be ``(n, dim)`` arrays or plain lists of lists.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..errors import BackendUnavailable, ConfigError, UpstreamError
from .base import Hit, check_k

logger = logging.getLogger(__name__)

FORMAT = "lookalike-opensearch/1"
FIELD = "vector"
RESERVED = ("id", FIELD)
KEYWORDS = ("id", "label", "path", "sha256")
ENGINES = ("faiss", "lucene")  # nmslib is deprecated and refused for new indexes from OpenSearch 3.0
K_MAX = 10_000  # the k-NN query's limit
PAGE = 1_000
MAX_BATCH_BYTES = 5_000_000  # under the smallest HTTP payload limit of Amazon OpenSearch Service (10 MB)
RETRYABLE = {429, 500, 502, 503, 504}


def raw_score(score: float) -> float:
    """The inner product behind an OpenSearch ``innerproduct`` score.

    OpenSearch docs, *Spaces* (mappings/supported-field-types/knn-spaces): for faiss (and
    nmslib) ``d = -ip`` and ``score = 1/(1 + d)`` if ``d >= 0`` else ``-d + 1``; lucene gives
    the same values (``ip + 1`` if ``ip > 0`` else ``1/(1 - ip)``). So ``score >= 1`` means
    ``ip = score - 1`` and ``score < 1`` means ``ip = 1 - 1/score``.
    """
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


def _rows(vectors: Any, dim: int, what: str = "vectors") -> list[list[float]]:
    """``(n, dim)`` floats as lists (numpy array or sequences); a single ``(dim,)`` vector is one row."""
    kind = getattr(getattr(vectors, "dtype", None), "kind", "f")
    shape = getattr(vectors, "shape", None)
    data = vectors.tolist() if hasattr(vectors, "tolist") else list(vectors)
    if kind != "f":
        raise ValueError(f"{what}: expected a float dtype, got {vectors.dtype}")
    if data and not isinstance(data[0], (list, tuple)) and len(data) == dim:
        data = [data]
    rows = []
    for row in data:
        if not isinstance(row, (list, tuple)) or len(row) != dim:
            got = shape if shape is not None else (len(data), len(row) if isinstance(row, (list, tuple)) else "?")
            raise ValueError(f"{what}: expected shape (n, {dim}), got {tuple(got)}")
        try:
            floats = [float(x) for x in row]
        except (TypeError, ValueError):
            raise ValueError(f"{what}: expected numbers, got {row[:3]!r}...") from None
        if not all(math.isfinite(x) for x in floats):
            raise ValueError(f"{what}: values must be finite")
        rows.append(floats)
    return rows


def _vector_json(row: Sequence[float]) -> str:
    # 9 significant digits round-trip every float32 and keep a 1280-d vector near 16 KB.
    return "[" + ",".join(f"{x:.9g}" for x in row) + "]"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def _reason(info: Any) -> str:
    """The most specific explanation in an OpenSearch error body (root cause, then caused_by)."""
    if isinstance(info, dict) and "error" in info:
        error = info["error"]
        if not isinstance(error, dict):
            return str(error)
        root = (error.get("root_cause") or [error])[0]
        reason = root.get("reason") or error.get("reason") or error.get("type", "")
        cause = (error.get("caused_by") or {}).get("reason")
        return f"{reason} ({cause})" if cause and cause not in reason else reason
    if isinstance(info, dict):
        return str(info.get("message") or info.get("Message") or info)
    return "no details" if info in (None, "") else str(info)


@dataclass
class BulkReport:
    """What one bulk load did; ``errors`` keeps the first few ``(id, reason)`` failures."""

    ok: int = 0
    failed: int = 0
    not_found: int = 0
    retries: int = 0
    batches: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)


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


def index_body(dim: int, *, model: Mapping[str, Any] | None = None, engine: str = "faiss", m: int = 32,
               ef_construction: int = 200, ef_search: int = 128) -> dict[str, Any]:
    """Settings and mapping of a new lookalike index (HNSW, inner product, keyword metadata)."""
    if engine not in ENGINES:
        raise ConfigError(f"LOOKALIKE_OPENSEARCH_ENGINE={engine!r} is not valid: use faiss or lucene "
                          "(nmslib is deprecated and refused by OpenSearch 3)")
    vector = {"type": "knn_vector", "dimension": int(dim),
              "method": {"name": "hnsw", "engine": engine, "space_type": "innerproduct",
                         "parameters": {"m": int(m), "ef_construction": int(ef_construction)}}}
    return {
        "settings": {"index": {"knn": True, "knn.algo_param.ef_search": int(ef_search)}},
        "mappings": {
            "_meta": {"lookalike": {"format": FORMAT, "dim": int(dim), "model": dict(model or {})}},
            "dynamic_templates": [{"strings_as_keywords": {"match_mapping_type": "string",
                                                           "mapping": {"type": "keyword"}}}],
            "properties": {FIELD: vector, **{name: {"type": "keyword"} for name in KEYWORDS}},
        },
    }


class OpenSearchIndex:
    """:class:`~lookalike.index.base.Index` over one OpenSearch index (see the module docstring)."""

    def __init__(self, client, name: str, *, dim: int, model: Mapping[str, Any] | None = None,
                 engine: str = "faiss", ef_search: int = 128, batch_size: int = 500, url: str = "",
                 max_retries: int = 5, initial_backoff: float = 0.5, max_backoff: float = 30.0):
        self.client, self.name, self.dim = client, name, int(dim)
        self.model = dict(model or {})
        self.engine, self.ef_search = engine, ef_search
        self.batch_size = max(1, int(batch_size))
        self.url = _redact(url)
        self.max_retries, self.initial_backoff, self.max_backoff = max_retries, initial_backoff, max_backoff
        self._dirty = False  # written since the last refresh: search would not see it yet

    # ----- opening ------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings, *, dim: int | None = None, model: Mapping[str, Any] | None = None,
                      create: bool = False, recreate: bool = False) -> OpenSearchIndex:
        """The index named by ``settings`` (``LOOKALIKE_OPENSEARCH_*``); ``create`` makes a missing one,
        ``recreate`` deletes an existing one first."""
        if not settings.opensearch_url:
            raise ConfigError("LOOKALIKE_OPENSEARCH_URL is not set: give the cluster endpoint, "
                              "e.g. https://search-xyz.eu-west-1.es.amazonaws.com")
        client = make_client(settings.opensearch_url, auth=settings.opensearch_auth,
                             username=settings.opensearch_username, password=settings.opensearch_password,
                             region=settings.aws_region)
        return cls.open(client, settings.opensearch_index, url=settings.opensearch_url, dim=dim, model=model,
                        create=create, recreate=recreate, engine=settings.opensearch_engine, m=settings.hnsw_m,
                        ef_construction=settings.hnsw_ef_construction, ef_search=settings.hnsw_ef_search,
                        batch_size=settings.opensearch_bulk_size, max_retries=settings.opensearch_max_retries)

    @classmethod
    def connect(cls, url: str, name: str, *, auth: str = "none", username: str | None = None,
                password: str | None = None, region: str | None = None, **kwargs: Any) -> OpenSearchIndex:
        """Open (or with ``create=True`` make) index ``name`` at ``url``; ``kwargs`` go to :meth:`open`."""
        client = make_client(url, auth=auth, username=username, password=password, region=region)
        return cls.open(client, name, url=url, **kwargs)

    @classmethod
    def open(cls, client, name: str, *, url: str = "", dim: int | None = None,
             model: Mapping[str, Any] | None = None, create: bool = False, recreate: bool = False,
             engine: str = "faiss", m: int = 32, ef_construction: int = 200, ef_search: int = 128,
             **kwargs: Any) -> OpenSearchIndex:
        """Open index ``name``; ``create`` makes it if missing (needs ``dim``), ``recreate`` replaces it."""
        probe = cls(client, name, dim=dim or 1, url=url, **kwargs)
        if recreate and create:
            probe._call("delete the index", client.indices.delete, index=name, ignore=[404])
            logger.info("deleted OpenSearch index %s to re-create it", name)
        if not probe._call("check the index", client.indices.exists, index=name, ignore=[404]):
            if not create:
                raise BackendUnavailable(
                    f"No OpenSearch index {name!r} at {probe.url}: create it with `lookalike push --to opensearch "
                    f"--url {probe.url} --index-name {name}` or `lookalike cloud-index`.")
            if dim is None:
                raise ConfigError("creating an OpenSearch index needs the embedding dimension")
            body = index_body(dim, model=model, engine=engine, m=m, ef_construction=ef_construction,
                              ef_search=ef_search)
            try:
                probe._call("create the index", client.indices.create, index=name, body=body)
                logger.info("created OpenSearch index %s (%d-d, %s HNSW m=%d)", name, dim, engine, m)
            except UpstreamError as exc:
                if "already exists" not in exc.message:  # another process created it first: use that one
                    raise
        mapping = next(iter(probe._call("read the mapping", client.indices.get_mapping, index=name).values()))
        stored = cls._describe(name, mapping.get("mappings", {}))
        if dim is not None and stored["dim"] != dim:
            raise ConfigError(f"OpenSearch index {name!r} holds {stored['dim']}-d vectors, not {dim}-d: "
                              "use another --index-name or re-create it (lookalike push --recreate)")
        wanted, have = (model or {}).get("name"), stored["model"].get("name")
        if wanted and have and wanted != have:
            raise ConfigError(f"OpenSearch index {name!r} was built with {have!r}, not {wanted!r}: "
                              "use another --index-name or re-create it (lookalike push --recreate)")
        return cls(client, name, dim=stored["dim"], model=stored["model"], engine=stored["engine"],
                   ef_search=ef_search, url=url, **kwargs)

    @staticmethod
    def _describe(name: str, mappings: Mapping[str, Any]) -> dict[str, Any]:
        vector = mappings.get("properties", {}).get(FIELD, {})
        if vector.get("type") != "knn_vector":
            raise ConfigError(f"OpenSearch index {name!r} has no knn_vector field {FIELD!r}: it was not made by "
                              "lookalike; use another --index-name")
        method = vector.get("method") or {}
        space = method.get("space_type") or vector.get("space_type")
        if space != "innerproduct":
            raise ConfigError(f"OpenSearch index {name!r} uses space {space!r}; lookalike needs innerproduct")
        meta = (mappings.get("_meta") or {}).get("lookalike") or {}
        return {"dim": int(vector["dimension"]), "engine": method.get("engine", "faiss"),
                "model": dict(meta.get("model") or {})}

    # ----- protocol -----------------------------------------------------------------------
    def __len__(self) -> int:
        self._publish()
        return int(self._call("count", self.client.count, index=self.name)["count"])

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and bool(id) and bool(
            self._call("check an id", self.client.exists, index=self.name, id=id, ignore=[404]))

    def add(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace entries (upsert by id); raises :class:`UpstreamError` if any is rejected."""
        report = self.bulk_index(ids, vectors, metadata)
        if report.failed:
            first = "; ".join(f"{i}: {r}" for i, r in report.errors[:3])
            raise UpstreamError(f"OpenSearch rejected {report.failed} of {len(ids)} entries ({first})")

    def bulk_index(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]], *,
                   progress: Callable[[int], None] | None = None) -> BulkReport:
        """Upsert entries in batches; failures are counted in the report, not raised."""
        ids, metadata = list(ids), list(metadata)
        rows = _rows(vectors, self.dim)
        if not (len(ids) == len(rows) == len(metadata)):
            raise ValueError(f"add: got {len(ids)} ids, {len(rows)} vectors, {len(metadata)} metadata records")
        if len(set(ids)) != len(ids):
            raise ValueError("add: ids must be unique within one call")
        actions = []
        for id_, row, meta in zip(ids, rows, metadata):
            if not isinstance(id_, str) or not id_:
                raise ValueError(f"add: ids must be non-empty strings, got {id_!r}")
            clash = [k for k in RESERVED if k in meta]
            if clash:
                raise ValueError(f"add: metadata of {id_!r} uses reserved field(s) {clash}")
            doc = json.dumps({"id": id_, **meta})
            source = f'{{"{FIELD}":{_vector_json(row)},{doc[1:]}'
            actions.append((id_, "index", json.dumps({"index": {"_id": id_}}) + "\n" + source + "\n"))
        return self._bulk(actions, progress)

    def delete(self, ids: Iterable[str]) -> int:
        unique = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))
        actions = [(i, "delete", json.dumps({"delete": {"_id": i}}) + "\n") for i in unique]
        report = self._bulk(actions, None)
        if report.failed:
            raise UpstreamError(f"OpenSearch failed to delete {report.failed} entries ({report.errors[0][1]})")
        return report.ok

    def search(self, vectors, k: int, filter: Mapping[str, Any] | None = None) -> list[list[Hit]]:
        rows = _rows(vectors, self.dim, "queries")
        k = min(check_k(k), K_MAX)
        clause = _filter_clause(filter) if filter else None
        if clause is False:
            return [[] for _ in rows]
        self._publish()
        # Lucene's HNSW searches with ef = k (docs: k-NN query, ef_search); ask for more, keep k.
        query_k = min(max(k, self.ef_search), K_MAX) if self.engine == "lucene" else k
        out = []
        for row in rows:
            knn: dict[str, Any] = {"vector": row, "k": query_k}
            if clause is not None:
                knn["filter"] = clause  # efficient filtering: applied during the k-NN search
            body = {"size": k, "query": {"knn": {FIELD: knn}}, "_source": {"excludes": [FIELD]}}
            hits = self._call("search", self.client.search, index=self.name, body=body)["hits"]["hits"]
            out.append([Hit(h["_id"], raw_score(h["_score"]), self._metadata(h.get("_source", {}))) for h in hits])
        return out

    def get(self, id: str) -> dict[str, Any] | None:
        found = self._call("get", self.client.get, index=self.name, id=id, _source_excludes=FIELD, ignore=[404])
        if not found.get("found"):
            if "error" in found:  # the index itself is missing
                raise BackendUnavailable(f"OpenSearch index {self.name!r} is gone from {self.url}: "
                                         f"{_reason(found)}")
            return None
        return self._metadata(found.get("_source", {}))

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """All ``(id, metadata)``, in id order (``search_after`` paging over the ``id`` keyword)."""
        self._publish()
        after = None
        while True:
            body: dict[str, Any] = {"size": PAGE, "query": {"match_all": {}}, "sort": [{"id": "asc"}],
                                    "_source": {"excludes": [FIELD]}, "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            hits = self._call("list entries", self.client.search, index=self.name, body=body)["hits"]["hits"]
            for h in hits:
                yield h["_id"], self._metadata(h.get("_source", {}))
            if len(hits) < PAGE:
                return
            after = hits[-1]["sort"]

    def get_vectors(self, ids: Sequence[str]):
        """The stored ``(len(ids), dim) float32`` vectors (KeyError for unknown ids)."""
        import numpy as np

        ids = list(ids)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), PAGE):
            chunk = ids[start:start + PAGE]
            docs = self._call("get vectors", self.client.mget, index=self.name, body={"ids": chunk},
                              _source_includes=FIELD)["docs"]
            for offset, doc in enumerate(docs):
                if not doc.get("found"):
                    raise KeyError(chunk[offset])
                out[start + offset] = doc["_source"][FIELD]
        return out

    def save(self) -> None:
        """Make writes visible to search (``_refresh``); OpenSearch itself makes them durable."""
        self._call("refresh", self.client.indices.refresh, index=self.name)
        self._dirty = False

    def info(self) -> dict[str, Any]:
        return {"backend": "opensearch", "url": self.url, "index": self.name, "count": len(self), "dim": self.dim,
                "model": self.model, "engine": self.engine}

    # ----- internals ----------------------------------------------------------------------
    @staticmethod
    def _metadata(source: Mapping[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in source.items() if k not in RESERVED}

    def _publish(self) -> None:
        if self._dirty:
            self.save()

    def _bulk(self, actions: list[tuple[str, str, str]], progress) -> BulkReport:
        report = BulkReport()
        started = time.perf_counter()
        batch: list[tuple[str, str, str]] = []
        size = 0
        for action in actions:
            if batch and (len(batch) >= self.batch_size or size + len(action[2]) > MAX_BATCH_BYTES):
                self._send(batch, report, progress)
                batch, size = [], 0
            batch.append(action)
            size += len(action[2])
        if batch:
            self._send(batch, report, progress)
        report.seconds = time.perf_counter() - started
        if actions:
            self._dirty = True
            logger.info("bulk %s: %d ok, %d failed, %d not found, %d retries in %.1fs", self.name, report.ok,
                        report.failed, report.not_found, report.retries, report.seconds)
        return report

    def _send(self, batch: list[tuple[str, str, str]], report: BulkReport, progress) -> None:
        """One batch; items answered 429/5xx are sent again with backoff, others counted."""
        pending = batch
        for attempt in range(self.max_retries + 1):
            response = self._call("bulk", self.client.bulk, index=self.name, body="".join(a[2] for a in pending),
                                  report=report)
            retry = []
            for action, item in zip(pending, response["items"]):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if action[1] == "delete" and result.get("result") == "not_found":
                    report.not_found += 1
                elif 200 <= status < 300:
                    report.ok += 1
                elif status in RETRYABLE and attempt < self.max_retries:
                    retry.append(action)
                else:
                    report.failed += 1
                    if len(report.errors) < 20:
                        report.errors.append((action[0], _reason({"error": result.get("error", status)})))
            if attempt == 0:
                report.batches += 1
            if progress is not None:
                progress(len(pending) - len(retry))
            if not retry:
                return
            pending = retry
            report.retries += 1
            time.sleep(self._backoff(attempt))

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.initial_backoff * 2 ** attempt)

    def _call(self, what: str, fn, report: BulkReport | None = None, **kwargs):
        """``fn(**kwargs)`` with retries on 429/5xx and connection errors; errors become lookalike errors."""
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
                                   self._backoff(attempt))
                    if report is not None:
                        report.retries += 1
                    time.sleep(self._backoff(attempt))
                    continue
                raise self._error(exc, what, retryable) from None
        raise AssertionError("unreachable")

    def _error(self, exc, what: str, retryable: bool) -> Exception:
        from opensearchpy.exceptions import ConnectionError as ConnectError

        if isinstance(exc, ConnectError):
            return BackendUnavailable(f"cannot reach OpenSearch at {self.url} to {what}: {exc.error}")
        status, reason = exc.status_code, _reason(exc.info)
        if status in (401, 403):
            return ConfigError(f"OpenSearch at {self.url} refused to {what} ({status}: {reason}); check "
                               "LOOKALIKE_OPENSEARCH_AUTH and the credentials")
        if status == 404 and "index_not_found" in str(exc.error):
            return BackendUnavailable(f"No OpenSearch index {self.name!r} at {self.url}: {reason}")
        if retryable:
            return BackendUnavailable(f"OpenSearch at {self.url} could not {what} after {self.max_retries} "
                                      f"retries ({status}: {reason})")
        return UpstreamError(f"OpenSearch could not {what}: {reason}")


def _filter_clause(flt: Mapping[str, Any]) -> dict[str, Any] | bool:
    """A query for ``{field: value | [values]}`` (same meaning as :func:`~lookalike.index.base.matches`);
    ``False`` when nothing can match."""
    clauses = []
    for name, wanted in flt.items():
        values = list(wanted) if isinstance(wanted, (list, tuple, set, frozenset)) else [wanted]
        if not values:
            return False
        present = [v for v in values if v is not None]
        options = []
        if present:
            options.append({"term": {name: present[0]}} if len(present) == 1 else {"terms": {name: present}})
        if len(present) < len(values):  # None matches entries without the field
            options.append({"bool": {"must_not": [{"exists": {"field": name}}]}})
        clauses.append(options[0] if len(options) == 1 else {"bool": {"should": options, "minimum_should_match": 1}})
    return clauses[0] if len(clauses) == 1 else {"bool": {"filter": clauses}}
