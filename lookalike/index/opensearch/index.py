"""The :class:`~lookalike.index.base.Index` protocol over one OpenSearch index.

One document per entry: ``_id`` = the entry id, ``vector`` (``knn_vector``, HNSW, space
``innerproduct`` so scores equal FAISS's inner products on unit vectors), ``id`` and the
metadata fields (strings mapped as ``keyword`` so filters are exact). The model that made
the vectors is kept in the mapping's ``_meta`` for the service's compatibility check.
Reads after writes refresh first, because OpenSearch search is near-real-time.

Opening reads the cluster's version once (``GET /``): a cluster too old for what lookalike
uses is refused with what to do, and the query form follows what it supports (see ``client``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..breadth import hnsw_ef_search_for
from ...errors import BackendUnavailable, ConfigError, UpstreamError
from ..base import Hit, check_k
from .bulk import BulkReport, BulkWriter, delete_actions, index_actions, short_id
from .client import DEFAULT_TIMEOUT, Calls, Cluster, make_client, read_cluster, reason
from .mapping import FIELD, K_MAX, PAGE, describe, filter_clause, index_body, knn_query, metadata, raw_score, rows

logger = logging.getLogger(__name__)


class OpenSearchIndex:
    """:class:`~lookalike.index.base.Index` over one OpenSearch index (see the module docstring)."""

    def __init__(self, client, name: str, *, dim: int, model: Mapping[str, Any] | None = None,
                 engine: str = "faiss", ef_search: int = 128, batch_size: int = 500, url: str = "",
                 max_retries: int = 5, initial_backoff: float = 0.5, max_backoff: float = 30.0,
                 timeout: float = DEFAULT_TIMEOUT, bulk_timeout: float = 120.0,
                 cluster: Cluster | None = None):
        self.client, self.name, self.dim = client, name, int(dim)
        self.model = dict(model or {})
        self.engine, self.ef_search = engine, ef_search
        self.cluster = cluster or Cluster(None)  # unknown: the query form every version takes
        self.calls = Calls(url, name, max_retries=max_retries, initial_backoff=initial_backoff,
                           max_backoff=max_backoff, timeout=timeout)
        self.url = self.calls.url
        self.writer = BulkWriter(client, name, self.calls, batch_size=batch_size, max_retries=max_retries,
                                 timeout=bulk_timeout)
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
                             region=settings.aws_region, timeout=settings.opensearch_timeout)
        return cls.open(client, settings.opensearch_index, url=settings.opensearch_url, dim=dim, model=model,
                        create=create, recreate=recreate, engine=settings.opensearch_engine, m=settings.hnsw_m,
                        ef_construction=settings.hnsw_ef_construction,
                        ef_search=hnsw_ef_search_for(None, settings.hnsw_ef_search),
                        batch_size=settings.opensearch_bulk_size, max_retries=settings.opensearch_max_retries,
                        timeout=settings.opensearch_timeout, bulk_timeout=settings.opensearch_bulk_timeout)

    @classmethod
    def connect(cls, url: str, name: str, *, auth: str = "none", username: str | None = None,
                password: str | None = None, region: str | None = None, **kwargs: Any) -> OpenSearchIndex:
        """Open (or with ``create=True`` make) index ``name`` at ``url``; ``kwargs`` go to :meth:`open`."""
        client = make_client(url, auth=auth, username=username, password=password, region=region,
                             timeout=kwargs.get("timeout", DEFAULT_TIMEOUT))
        return cls.open(client, name, url=url, **kwargs)

    @classmethod
    def open(cls, client, name: str, *, url: str = "", dim: int | None = None,
             model: Mapping[str, Any] | None = None, create: bool = False, recreate: bool = False,
             engine: str = "faiss", m: int = 32, ef_construction: int = 200, ef_search: int = 128,
             **kwargs: Any) -> OpenSearchIndex:
        """Open index ``name``; ``create`` makes it if missing (needs ``dim``), ``recreate`` replaces it."""
        probe = cls(client, name, dim=dim or 1, url=url, **kwargs)
        call = probe.calls
        found = read_cluster(call("read the cluster version", client.info), probe.url)
        if recreate and create:
            call("delete the index", client.indices.delete, index=name, ignore=[404])
            logger.info("deleted OpenSearch index %s to re-create it", name)
        if not call("check the index", client.indices.exists, index=name, ignore=[404]):
            if not create:
                raise BackendUnavailable(
                    f"No OpenSearch index {name!r} at {probe.url}: create it with `lookalike push --to opensearch "
                    f"--url {probe.url} --index-name {name}` or `lookalike cloud-index`.")
            if dim is None:
                raise ConfigError("creating an OpenSearch index needs the embedding dimension")
            found.check(engine, probe.url)
            body = index_body(dim, model=model, engine=engine, m=m, ef_construction=ef_construction,
                              ef_search=ef_search)
            try:
                call("create the index", client.indices.create, index=name, body=body)
                logger.info("created OpenSearch index %s (%d-d, %s HNSW m=%d)", name, dim, engine, m)
            except UpstreamError as exc:
                if "already exists" not in exc.message:  # another process created it first: use that one
                    raise
        mapping = next(iter(call("read the mapping", client.indices.get_mapping, index=name).values()))
        stored = describe(name, mapping.get("mappings", {}))
        if dim is not None and stored["dim"] != dim:
            raise ConfigError(f"OpenSearch index {name!r} holds {stored['dim']}-d vectors, not {dim}-d: "
                              "use another --index-name or re-create it (lookalike push --recreate)")
        wanted, have = (model or {}).get("name"), stored["model"].get("name")
        if wanted and have and wanted != have:
            raise ConfigError(f"OpenSearch index {name!r} was built with {have!r}, not {wanted!r}: "
                              "use another --index-name or re-create it (lookalike push --recreate)")
        found.check(stored["engine"], probe.url)
        return cls(client, name, dim=stored["dim"], model=stored["model"], engine=stored["engine"],
                   ef_search=ef_search, url=url, cluster=found, **kwargs)

    # ----- protocol -----------------------------------------------------------------------
    def __len__(self) -> int:
        self._publish()
        return int(self.calls("count", self.client.count, index=self.name)["count"])

    def __contains__(self, id: object) -> bool:
        return isinstance(id, str) and bool(id) and bool(
            self.calls("check an id", self.client.exists, index=self.name, id=id, ignore=[404]))

    def add(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]]) -> None:
        """Insert or replace entries (upsert by id). Entries that cannot be stored (an id over 512
        bytes, a vector that is not a unit vector) raise ``ValueError`` naming them, those OpenSearch
        rejects :class:`UpstreamError`; either way the other entries are stored."""
        report = self.bulk_index(ids, vectors, metadata)
        if report.failed:
            first = "; ".join(f"{i!r}: {r}" for i, r in report.errors[:3])
            error = ValueError if report.invalid == report.failed else UpstreamError
            raise error(f"{report.failed} of {len(ids)} entries were not stored in OpenSearch ({first})")

    def bulk_index(self, ids: Sequence[str], vectors, metadata: Sequence[Mapping[str, Any]], *,
                   progress: Callable[[int], None] | None = None) -> BulkReport:
        """Upsert entries in batches; failures (entries refused before sending included) are counted
        in the report, not raised."""
        actions, refused = index_actions(list(ids), rows(vectors, self.dim), list(metadata))
        for id_, why in refused:
            logger.warning("not storing %s in OpenSearch: %s", short_id(id_), why)
        return self._write(actions, progress, refused)

    def delete(self, ids: Iterable[str]) -> int:
        unique = list(dict.fromkeys(i for i in ids if isinstance(i, str) and i))
        report = self._write(delete_actions(unique), None)
        if report.failed:
            raise UpstreamError(f"OpenSearch failed to delete {report.failed} entries ({report.errors[0][1]})")
        return report.ok

    def search(self, vectors, k: int, filter: Mapping[str, Any] | None = None) -> list[list[Hit]]:
        queries = rows(vectors, self.dim, "queries")
        k = min(check_k(k), K_MAX)
        clause = filter_clause(filter) if filter else None
        if clause is False:
            return [[] for _ in queries]
        self._publish()
        out = []
        for row in queries:
            body = knn_query(row, k, clause, ef_search=self.ef_search,
                             method_parameters=self.cluster.method_parameters)
            hits = self.calls("search", self.client.search, index=self.name, body=body)["hits"]["hits"]
            out.append([Hit(h["_id"], raw_score(h["_score"]), metadata(h.get("_source", {}))) for h in hits])
        return out

    def get(self, id: str) -> dict[str, Any] | None:
        found = self.calls("get", self.client.get, index=self.name, id=id, _source_excludes=FIELD, ignore=[404])
        if not found.get("found"):
            if "error" in found:  # the index itself is missing
                raise BackendUnavailable(f"OpenSearch index {self.name!r} is gone from {self.url}: "
                                         f"{reason(found)}")
            return None
        return metadata(found.get("_source", {}))

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """All ``(id, metadata)``, in id order (``search_after`` paging over the ``id`` keyword)."""
        self._publish()
        after = None
        while True:
            body: dict[str, Any] = {"size": PAGE, "query": {"match_all": {}}, "sort": [{"id": "asc"}],
                                    "_source": {"excludes": [FIELD]}, "track_total_hits": False}
            if after is not None:
                body["search_after"] = after
            hits = self.calls("list entries", self.client.search, index=self.name, body=body)["hits"]["hits"]
            for h in hits:
                yield h["_id"], metadata(h.get("_source", {}))
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
            docs = self.calls("get vectors", self.client.mget, index=self.name, body={"ids": chunk},
                              _source_includes=FIELD)["docs"]
            for offset, doc in enumerate(docs):
                if not doc.get("found"):
                    raise KeyError(chunk[offset])
                out[start + offset] = doc["_source"][FIELD]
        return out

    def save(self) -> None:
        """Make writes visible to search (``_refresh``); OpenSearch itself makes them durable."""
        self.calls("refresh", self.client.indices.refresh, index=self.name)
        self._dirty = False

    def info(self) -> dict[str, Any]:
        return {"backend": "opensearch", "url": self.url, "index": self.name, "count": len(self), "dim": self.dim,
                "model": self.model, "engine": self.engine, "opensearch_version": self.cluster.number}

    # ----- internals ----------------------------------------------------------------------
    def _write(self, actions, progress, refused=()) -> BulkReport:
        report = self.writer.run(actions, progress, refused)
        if actions:
            self._dirty = True
        return report

    def _publish(self) -> None:
        if self._dirty:
            self.save()
