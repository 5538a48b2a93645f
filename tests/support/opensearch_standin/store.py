"""In-memory cluster state: indices, documents, segments and near-real-time visibility.

Visibility follows OpenSearch's near-real-time model, made strict: ``GET``/``HEAD _doc`` and
``_mget`` are real-time, but ``_search`` and ``_count`` see only what the last refresh
(``_refresh`` or ``?refresh=true|wait_for``) published. There is no periodic refresh, so a
client that never refreshes is caught instead of passing by luck of timing.

Each refresh that has new documents writes them to a new *segment* (an update or delete only
hides the old copy, as Lucene marks it deleted), and segments are never merged. This matters
because the k-NN plugin searches faiss and nmslib graphs per segment (see :mod:`.search`).

``_bulk`` lives in :mod:`.bulk`, ``_search``/``_count`` in :mod:`.search`.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from .bulk import SHARDS, run_bulk
from .documents import parse_document
from .errors import ApiError, bad_request, index_not_found, unsupported
from .mapping import check_index_name, parse_mapping, parse_settings
from .search import run_count, run_search
from .versions import Version

__all__ = ["SHARDS", "Cluster", "Index", "Doc"]


class Doc:
    __slots__ = ("id", "source", "terms", "vectors", "version", "seq_no", "order", "segment")

    def __init__(self, id, source, terms, vectors, version, seq_no, order):
        self.id, self.source, self.terms, self.vectors = id, source, terms, vectors
        self.version, self.seq_no, self.order = version, seq_no, order
        self.segment: int | None = None  # set by the refresh that publishes this copy


class Index:
    def __init__(self, name: str, settings: dict, mapping, created: float, version: Version):
        self.name, self.settings, self.mapping = name, settings, mapping
        self.version = version  # the cluster's: the k-NN rules of that release apply
        self.uuid = uuid.uuid4().hex[:22]
        self.created = created
        self.docs: dict[str, Doc] = {}  # live (real-time) view
        self.visible: dict[str, Doc] = {}  # what the last refresh published
        self.versions: dict[str, int] = {}  # survives deletes, like OpenSearch's version map
        self.seq_no = -1
        self.order = 0
        self.segments = 0  # how many segments refreshes have written
        self._matrix: dict[str, tuple[list[Doc], np.ndarray]] = {}

    def refresh(self) -> None:
        fresh = [d for d in self.docs.values() if d.segment is None]
        if fresh:
            self.segments += 1
            for doc in fresh:
                doc.segment = self.segments
        self.visible = dict(self.docs)
        self._matrix = {}

    def put(self, doc_id: str, source: Any, *, create: bool = False) -> tuple[str, Doc]:
        if create and doc_id in self.docs:
            raise ApiError(409, "version_conflict_engine_exception",
                           f"[{doc_id}]: version conflict, document already exists (current version "
                           f"[{self.docs[doc_id].version}])", extra={"index": self.name, "shard": "0"})
        parsed = parse_document(self.mapping, source, doc_id)
        self.mapping.fields.update(parsed.new_fields)
        existed = doc_id in self.docs
        self.docs.pop(doc_id, None)  # an update is delete + add: the document moves to the end
        self.seq_no += 1
        self.order += 1
        version = self.versions.get(doc_id, 0) + 1
        self.versions[doc_id] = version
        doc = Doc(doc_id, source, parsed.terms, parsed.vectors, version, self.seq_no, self.order)
        self.docs[doc_id] = doc
        return ("updated" if existed else "created"), doc

    def remove(self, doc_id: str) -> tuple[bool, int, int]:
        existed = self.docs.pop(doc_id, None) is not None
        self.seq_no += 1
        version = self.versions.get(doc_id, 0) + 1
        self.versions[doc_id] = version
        return existed, version, self.seq_no

    def matrix(self, field: str) -> tuple[list[Doc], np.ndarray]:
        """Visible documents holding ``field`` and their ``(n, dim) float32`` vectors (cached)."""
        if field not in self._matrix:
            docs = [d for d in self.visible.values() if field in d.vectors]
            dim = self.mapping.knn[field].dimension
            matrix = np.stack([d.vectors[field] for d in docs]) if docs else np.zeros((0, dim), np.float32)
            self._matrix[field] = (docs, matrix)
        return self._matrix[field]

    def doc_meta(self, doc: Doc) -> dict[str, Any]:
        return {"_index": self.name, "_id": doc.id, "_version": doc.version, "_seq_no": doc.seq_no,
                "_primary_term": 1}


class Cluster:
    def __init__(self, version: Version):
        self.version = version
        self.indices: dict[str, Index] = {}
        self.knn_searches: list[dict[str, Any]] = []  # what each k-NN query searched with (see search.py)

    def get(self, name: str) -> Index:
        if name not in self.indices:
            raise index_not_found(name)
        return self.indices[name]

    def create(self, name: str, body: Any) -> Index:
        check_index_name(name)
        if name in self.indices:
            raise ApiError(400, "resource_already_exists_exception",
                           f"index [{name}/{self.indices[name].uuid}] already exists",
                           extra={"index": name, "index_uuid": self.indices[name].uuid})
        body = body or {}
        if not isinstance(body, dict):
            raise bad_request("request body is required to be an object")
        for key in body:
            if key not in ("settings", "mappings", "aliases"):
                raise ApiError(400, "parse_exception", f"unknown key [{key}] for create index")
        if body.get("aliases"):
            raise unsupported("index aliases")
        settings = parse_settings(body.get("settings"))
        mapping = parse_mapping(body.get("mappings"), settings, (self.version.major, self.version.minor))
        index = Index(name, settings, mapping, time.time(), self.version)
        self.indices[name] = index
        return index

    def bulk(self, raw: bytes, default_index: str | None, refresh: bool, reject_items: list[int]) -> dict:
        return run_bulk(self, raw, default_index, refresh, reject_items)

    def search(self, name: str, body: Any, params: dict[str, str]) -> dict:
        return run_search(self, name, body, params)

    def count(self, name: str, body: Any) -> int:
        return run_count(self, name, body)
