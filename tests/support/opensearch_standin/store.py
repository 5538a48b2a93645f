"""In-memory cluster state: indices, documents, near-real-time visibility, ``_bulk``, ``_search``.

Visibility follows OpenSearch's near-real-time model, made strict: ``GET``/``HEAD _doc`` and
``_mget`` are real-time, but ``_search`` and ``_count`` see only what the last refresh
(``_refresh`` or ``?refresh=true|wait_for``) published. There is no periodic refresh, so a
client that never refreshes is caught instead of passing by luck of timing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np

from . import query as q
from .documents import parse_document
from .errors import ApiError, bad_request, index_not_found, parsing, unsupported
from .mapping import check_index_name, parse_mapping, parse_settings

SHARDS = {"total": 2, "successful": 1, "failed": 0}
BULK_META = {"_index", "_id", "routing", "version", "version_type", "if_seq_no", "if_primary_term", "pipeline",
             "require_alias", "retry_on_conflict", "_source"}


class Doc:
    __slots__ = ("id", "source", "terms", "vectors", "version", "seq_no", "order")

    def __init__(self, id, source, terms, vectors, version, seq_no, order):
        self.id, self.source, self.terms, self.vectors = id, source, terms, vectors
        self.version, self.seq_no, self.order = version, seq_no, order


class Index:
    def __init__(self, name: str, settings: dict, mapping, created: float):
        self.name, self.settings, self.mapping = name, settings, mapping
        self.uuid = uuid.uuid4().hex[:22]
        self.created = created
        self.docs: dict[str, Doc] = {}  # live (real-time) view
        self.visible: dict[str, Doc] = {}  # what the last refresh published
        self.versions: dict[str, int] = {}  # survives deletes, like OpenSearch's version map
        self.seq_no = -1
        self.order = 0
        self._matrix: dict[str, tuple[list[Doc], np.ndarray]] = {}

    def refresh(self) -> None:
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
    def __init__(self, version: tuple[int, int]):
        self.version = version
        self.indices: dict[str, Index] = {}

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
        mapping = parse_mapping(body.get("mappings"), settings, self.version)
        index = Index(name, settings, mapping, time.time())
        self.indices[name] = index
        return index

    # ----- _bulk --------------------------------------------------------------------------
    def bulk(self, raw: bytes, default_index: str | None, refresh: bool, reject_items: list[int]) -> dict:
        """Apply an NDJSON bulk body; ``reject_items[0]`` index actions answer 429 (fault injection)."""
        started = time.perf_counter()
        text = raw.decode("utf-8")
        if not text.endswith("\n"):
            raise bad_request("The bulk request must be terminated by a newline [\\n]")
        lines = text[:-1].split("\n")
        actions = []
        i = 0
        while i < len(lines):
            line_no = i + 1
            try:
                action = json.loads(lines[i])
            except ValueError:
                raise ApiError(400, "json_parse_exception", f"Malformed action/metadata line [{line_no}], "
                                                            "expected START_OBJECT") from None
            if not isinstance(action, dict) or len(action) != 1:
                raise bad_request(f"Malformed action/metadata line [{line_no}], expected START_OBJECT or "
                                  "END_OBJECT but found [null]")
            op, meta = next(iter(action.items()))
            if op not in ("index", "create", "delete", "update"):
                raise bad_request(f"Malformed action/metadata line [{line_no}], expected field [create], "
                                  f"[delete], [index] or [update] but found [{op}]")
            if op == "update":
                raise unsupported("bulk update actions")
            if not isinstance(meta, dict):
                raise bad_request(f"Malformed action/metadata line [{line_no}], expected START_OBJECT")
            for key, value in meta.items():
                if key not in BULK_META:
                    raise bad_request(f"Action/metadata line [{line_no}] contains an unknown parameter [{key}]")
                if key not in ("_index", "_id") and value is not None:
                    raise unsupported(f"bulk metadata [{key}]")
            name = meta.get("_index") or default_index
            if not name:
                raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: index is missing;")
            source = None
            if op != "delete":
                i += 1
                if i >= len(lines):
                    raise bad_request(f"Validation Failed: 1: source is missing for [{op}] action at line "
                                      f"[{line_no}];", "action_request_validation_exception")
                try:
                    source = json.loads(lines[i], parse_constant=_reject_constant)
                except ValueError as exc:
                    source = _BadJson(str(exc))
            elif meta.get("_id") in (None, ""):
                raise ApiError(400, "action_request_validation_exception", "Validation Failed: 1: id is missing;")
            actions.append((op, name, meta.get("_id"), source))
            i += 1
        items, touched = [], set()
        for op, name, doc_id, source in actions:
            items.append({op: self._bulk_item(op, name, doc_id, source, reject_items, touched)})
        if refresh:
            for name in touched:
                self.indices[name].refresh()
        return {"took": int((time.perf_counter() - started) * 1000),
                "errors": any("error" in next(iter(it.values())) for it in items), "items": items}

    def _bulk_item(self, op, name, doc_id, source, reject_items, touched) -> dict:
        head = {"_index": name, "_id": doc_id}
        try:
            if op == "delete":
                index = self.get(name)
                existed, version, seq_no = index.remove(str(doc_id))
                touched.add(name)
                return {**head, "_version": version, "result": "deleted" if existed else "not_found",
                        "_shards": SHARDS, "_seq_no": seq_no, "_primary_term": 1, "status": 200 if existed else 404}
            if reject_items and reject_items[0] > 0:
                reject_items[0] -= 1
                raise ApiError(429, "es_rejected_execution_exception",
                               "rejected execution of coordinating operation [shard_detail=[" + name + "][0][P], "
                               "shard_coordinating_and_primary_bytes=0, shard_operation_bytes=1024, "
                               "shard_max_coordinating_and_primary_bytes=1]")
            if isinstance(source, _BadJson):
                raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                               caused_by={"type": "json_parse_exception", "reason": source.reason})
            if doc_id is None:
                doc_id = uuid.uuid4().hex[:20]
                head["_id"] = doc_id
            doc_id = str(doc_id)
            if len(doc_id.encode()) > 512:
                raise bad_request(f"id [{doc_id}] is too long, must be no longer than 512 bytes but was: "
                                  f"{len(doc_id.encode())}")
            if name not in self.indices:  # action.auto_create_index: a plain index, dynamic mapping
                self.create(name, None)
            index = self.indices[name]
            result, doc = index.put(doc_id, source, create=op == "create")
            touched.add(name)
            return {**index.doc_meta(doc), "result": result, "_shards": SHARDS,
                    "status": 201 if result == "created" else 200}
        except ApiError as exc:
            return {**head, "status": exc.status, "error": exc.detail()}

    # ----- _search / _count ---------------------------------------------------------------
    def search(self, name: str, body: Any, params: dict[str, str]) -> dict:
        started = time.perf_counter()
        index = self.get(name)
        body = body or {}
        if not isinstance(body, dict):
            raise parsing("request body must be an object")
        q.check_body_keys(body)
        size = body.get("size", _int_param(params, "size", 10))
        from_ = body.get("from", _int_param(params, "from", 0))
        size, from_ = q.check_window(index, size, from_)
        source = q.source_filter(body.get("_source"), params)
        query = body.get("query", {"match_all": {}})
        name_, qbody = q.one_query(query, "query")
        sort = q.parse_sort(body["sort"], index) if "sort" in body else None
        after = body.get("search_after")
        if after is not None:
            if sort is None:
                raise bad_request("Cannot use [search_after] without sort")
            if not isinstance(after, list) or len(after) != len(sort):
                raise bad_request(f"search_after has {len(after) if isinstance(after, list) else 1} value(s) "
                                    f"but sort has {len(sort)}.")
            if from_ > 0:
                raise bad_request("`from` parameter must be set to 0 when `search_after` is used.")
        if name_ == "knn":
            scored = self._knn(index, q.parse_knn(qbody, index))
        else:
            match = q.compile_filter(query, index)
            scored = [(d, np.float32(1.0)) for d in index.visible.values() if match(d)]
        total = len(scored)
        if sort:
            rows = sorted(scored, key=lambda ds: _sort_key(ds[0], ds[1], sort))
            if after is not None:
                rows = [r for r in rows if _sort_key(r[0], r[1], sort)[:-1] > _after_key(after, sort)]
        else:
            rows = sorted(scored, key=lambda ds: (-float(ds[1]), ds[0].order))
        hits = []
        for doc, score in rows[from_:from_ + size]:
            hit = {"_index": name, "_id": doc.id, "_score": None if sort else q.as_json_float(score)}
            kept = source(doc.source)
            if kept is not None:
                hit["_source"] = kept
            if sort:
                hit["sort"] = [_sort_value(doc, score, f) for f, _ in sort]
            hits.append(hit)
        track = body.get("track_total_hits", 10_000)
        relation = "eq"
        if track is not True and isinstance(track, int) and total > track:
            total, relation = track, "gte"
        hits_obj: dict[str, Any] = {"max_score": None if sort or not rows else q.as_json_float(max(s for _, s in rows)),
                                    "hits": hits}
        if track is not False:
            hits_obj = {"total": {"value": total, "relation": relation}, **hits_obj}
        return {"took": int((time.perf_counter() - started) * 1000), "timed_out": False,
                "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}, "hits": hits_obj}

    @staticmethod
    def _knn(index: Index, knn: dict) -> list[tuple[Doc, np.float32]]:
        if knn.get("none"):
            return []
        docs, matrix = index.matrix(knn["field"])
        if knn["filter"] is not None:
            keep = [i for i, d in enumerate(docs) if knn["filter"](d)]
            docs, matrix = [docs[i] for i in keep], matrix[keep]
        if not docs:
            return []
        scores = q.knn_scores(knn["space"], matrix, knn["vector"])
        order = sorted(range(len(docs)), key=lambda i: (-float(scores[i]), docs[i].order))[:knn["k"]]
        return [(docs[i], scores[i]) for i in order]

    def count(self, name: str, body: Any) -> int:
        index = self.get(name)
        body = body or {}
        for key in body:
            if key != "query":
                raise parsing(f"request does not support [{key}]")
        query = body.get("query", {"match_all": {}})
        if q.one_query(query, "query")[0] == "knn":
            raise unsupported("knn queries in _count")
        match = q.compile_filter(query, index)
        return sum(1 for d in index.visible.values() if match(d))


def _int_param(params: dict[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except ValueError:
        raise bad_request(f"Failed to parse int parameter [{name}] with value [{params[name]}]") from None


class _BadJson:
    def __init__(self, reason: str):
        self.reason = reason


def _reject_constant(name: str):
    raise ValueError(f"Non-standard token '{name}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow")


def _sort_value(doc: Doc, score, field: str):
    if field == "_score":
        return q.as_json_float(score)
    if field == "_doc":
        return doc.order
    values = doc.terms.get(field) or []
    return values[0] if values else None


def _sort_key(doc: Doc, score, sort) -> tuple:
    key = []
    for field, desc in sort:
        value = _sort_value(doc, score, field)
        missing = value is None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and desc:
            value = -value
        key.append((missing, _Desc(value) if desc and not isinstance(value, (int, float)) else value))
    return (*key, doc.order)


def _after_key(after: list, sort) -> tuple:
    key = []
    for value, (_field, desc) in zip(after, sort):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and desc:
            value = -value
        key.append((value is None, _Desc(value) if desc and not isinstance(value, (int, float)) else value))
    return tuple(key)


class _Desc:
    """Reverses the order of a non-numeric sort value."""

    __slots__ = ("v",)

    def __init__(self, v):
        self.v = v

    def __lt__(self, other):
        return self.v > other.v

    def __gt__(self, other):
        return self.v < other.v

    def __eq__(self, other):
        return self.v == other.v
