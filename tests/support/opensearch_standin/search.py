"""``_search`` and ``_count`` over the visible documents: the ``knn`` query (per-segment ``k``
for faiss and nmslib, see :func:`_knn`), filter queries, sorting with ``search_after``, paging
and ``_source`` filtering. Request parsing and validation is :mod:`.query`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import query as q
from .errors import bad_request, parsing, unsupported
from .versions import effective_ef_search, knn_scores


def run_search(cluster, name: str, body: Any, params: dict[str, str]) -> dict:
    """``POST /{index}/_search``: a ``knn`` query or a filter query, then sort, page and ``_source``."""
    started = time.perf_counter()
    index = cluster.get(name)
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
        scored = _knn(cluster, index, q.parse_knn(qbody, index))
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


def _knn(cluster, index, knn: dict) -> list[tuple[Any, np.float32]]:
    """The hits of one k-NN query, with the plugin's idea of ``k``.

    - faiss and nmslib: k-NN 2.19 (also 2.11, 3.0), src/main/java/org/opensearch/knn/index/query/
      KNNQueryFactory.java builds a ``KNNQuery``, and KNNWeight.java ``scorer(LeafReaderContext)``
      runs ``searchLeaf(context, knnQuery.getK())`` per segment: up to ``k`` hits *per segment*;
      only with ``rescore`` or ``expand_nested_docs`` does NativeEngineKnnVectorQuery.java cut them
      to ``k`` across segments (``ResultUtil.reduceToTopK``). ``size`` then picks the best overall.
    - lucene: the same factory makes Lucene's KnnFloatVectorQuery with ``luceneK = max(k,
      method_parameters.ef_search)``, which keeps the best ``luceneK`` of the whole shard.

    Search is exact (a real graph search is approximate), and each query's effective ef_search
    is logged to ``cluster.knn_searches`` (:func:`.versions.effective_ef_search`).
    """
    if knn.get("none"):
        return []
    field, engine = knn["knn_field"], knn["engine"]
    cluster.knn_searches.append({
        "index": index.name, "field": knn["field"], "engine": engine, "k": knn["k"],
        "method_parameters": knn["method_parameters"], "segments": index.segments,
        "ef_search": effective_ef_search(index.version, field, index.settings, knn["method_parameters"], knn["k"])})
    docs, matrix = index.matrix(knn["field"])
    if knn["filter"] is not None:
        keep = [i for i, d in enumerate(docs) if knn["filter"](d)]
        docs, matrix = [docs[i] for i in keep], matrix[keep]
    if not docs:
        return []
    scores = knn_scores(knn["space"], engine, index.version, matrix, knn["vector"])

    def best(positions: list[int], n: int) -> list[int]:
        return sorted(positions, key=lambda i: (-float(scores[i]), docs[i].order))[:n]

    if engine == "lucene":
        chosen = best(list(range(len(docs))), max(knn["k"], knn["method_parameters"].get("ef_search", 0)))
    else:
        by_segment: dict[int, list[int]] = {}
        for i, doc in enumerate(docs):
            by_segment.setdefault(doc.segment, []).append(i)
        chosen = [i for positions in by_segment.values() for i in best(positions, knn["k"])]
    return [(docs[i], scores[i]) for i in chosen]


def run_count(cluster, name: str, body: Any) -> int:
    index = cluster.get(name)
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


def _sort_value(doc, score, field: str):
    if field == "_score":
        return q.as_json_float(score)
    if field == "_doc":
        return doc.order
    values = doc.terms.get(field) or []
    return values[0] if values else None


def _sort_key(doc, score, sort) -> tuple:
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
