"""What a lookalike index looks like in OpenSearch: its settings and mapping, the documents'
shape, the k-NN and filter queries, and how scores map back to inner products.

No numpy: the Lambda package ships without it, so vectors may be ``(n, dim)`` arrays or
plain lists of lists.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ...errors import ConfigError

FORMAT = "lookalike-opensearch/1"
FIELD = "vector"
RESERVED = ("id", FIELD)
KEYWORDS = ("id", "label", "path", "sha256")
ENGINES = ("faiss", "lucene")  # nmslib is deprecated and refused for new indexes from OpenSearch 3.0
K_MAX = 10_000  # the k-NN query's limit
PAGE = 1_000
MAX_ID_BYTES = 512  # OpenSearch refuses longer ids, and a whole _bulk request with them (see bulk.py)
NORM_TOLERANCE = 1e-3  # float32 L2-normalised rows are within ~1e-6 of 1; text round trips add nothing


def raw_score(score: float) -> float:
    """The inner product behind an OpenSearch ``innerproduct`` score.

    OpenSearch docs, *Spaces* (mappings/supported-field-types/knn-spaces): for faiss (and
    nmslib) ``d = -ip`` and ``score = 1/(1 + d)`` if ``d >= 0`` else ``-d + 1``; lucene gives
    the same values (``ip + 1`` if ``ip > 0`` else ``1/(1 - ip)``). So ``score >= 1`` means
    ``ip = score - 1`` and ``score < 1`` means ``ip = 1 - 1/score``.
    """
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


def rows(vectors: Any, dim: int, what: str = "vectors") -> list[list[float]]:
    """``(n, dim)`` floats as lists (numpy array or sequences); a single ``(dim,)`` vector is one row."""
    kind = getattr(getattr(vectors, "dtype", None), "kind", "f")
    shape = getattr(vectors, "shape", None)
    data = vectors.tolist() if hasattr(vectors, "tolist") else list(vectors)
    if kind != "f":
        raise ValueError(f"{what}: expected a float dtype, got {vectors.dtype}")
    if data and not isinstance(data[0], (list, tuple)) and len(data) == dim:
        data = [data]
    out = []
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
        out.append(floats)
    return out


def vector_json(row: Sequence[float]) -> str:
    # 9 significant digits round-trip every float32 and keep a 1280-d vector near 16 KB.
    return "[" + ",".join(f"{x:.9g}" for x in row) + "]"


def index_body(dim: int, *, model: Mapping[str, Any] | None = None, engine: str = "faiss", m: int = 32,
               ef_construction: int = 200, ef_search: int = 128) -> dict[str, Any]:
    """Settings and mapping of a new lookalike index (HNSW, inner product, keyword metadata).

    ``ef_search`` goes into the faiss graph itself (``method.parameters``), not into the index
    setting ``index.knn.algo_param.ef_search``, which the k-NN plugin reads for nmslib only
    (k-NN 2.19, src/main/java/org/opensearch/knn/index/util/IndexUtil.java ``getParametersAtLoading``);
    a faiss graph searches with its own value (jni/src/faiss_wrapper.cpp) unless the query names
    one. Lucene has no stored ef_search: each query asks for it (:func:`knn_query`).
    """
    if engine not in ENGINES:
        raise ConfigError(f"LOOKALIKE_OPENSEARCH_ENGINE={engine!r} is not valid: use faiss or lucene "
                          "(nmslib is deprecated and refused by OpenSearch 3)")
    parameters = {"m": int(m), "ef_construction": int(ef_construction)}
    if engine == "faiss":
        parameters["ef_search"] = int(ef_search)
    vector = {"type": "knn_vector", "dimension": int(dim),
              "method": {"name": "hnsw", "engine": engine, "space_type": "innerproduct", "parameters": parameters}}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "_meta": {"lookalike": {"format": FORMAT, "dim": int(dim), "model": dict(model or {})}},
            "dynamic_templates": [{"strings_as_keywords": {"match_mapping_type": "string",
                                                           "mapping": {"type": "keyword"}}}],
            "properties": {FIELD: vector, **{name: {"type": "keyword"} for name in KEYWORDS}},
        },
    }


def describe(name: str, mappings: Mapping[str, Any]) -> dict[str, Any]:
    """``{"dim", "engine", "model"}`` of an existing index, or a clear error if lookalike did not make it."""
    vector = mappings.get("properties", {}).get(FIELD, {})
    if vector.get("type") != "knn_vector":
        raise ConfigError(f"OpenSearch index {name!r} has no knn_vector field {FIELD!r}: it was not made by "
                          "lookalike; use another --index-name")
    method = vector.get("method") or {}
    space = method.get("space_type") or vector.get("space_type")
    if space != "innerproduct":
        raise ConfigError(f"OpenSearch index {name!r} uses space {space!r}; lookalike needs innerproduct")
    engine = method.get("engine", "faiss")
    if engine not in ENGINES:
        raise ConfigError(f"OpenSearch index {name!r} uses the {engine} engine, which cannot filter a k-NN "
                          "search: re-create it with faiss or lucene (lookalike push --recreate)")
    meta = (mappings.get("_meta") or {}).get("lookalike") or {}
    return {"dim": int(vector["dimension"]), "engine": engine, "model": dict(meta.get("model") or {})}


def metadata(source: Mapping[str, Any]) -> dict[str, Any]:
    """A document's ``_source`` without the vector and the id copy."""
    return {k: v for k, v in source.items() if k not in RESERVED}


def filter_clause(flt: Mapping[str, Any]) -> dict[str, Any] | bool:
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


def knn_query(row: list[float], k: int, clause: dict[str, Any] | None, *, ef_search: int,
              method_parameters: bool) -> dict[str, Any]:
    """The ``_search`` body of one k-NN query for the ``k`` best hits.

    The filter is the k-NN *efficient filter* (applied during the graph search, not after it).
    ``ef_search`` (the candidate list of the HNSW search) is sent per query as
    ``method_parameters`` where the cluster has them (2.16+: faiss then ignores the graph's own
    value, lucene searches ``max(k, ef_search)`` candidates). Older clusters get the same effect
    by asking for ``k = max(k, ef_search)`` while keeping ``size = k``: a graph search never
    looks at fewer candidates than ``k``, and ``size`` keeps the best ``k`` of them.
    """
    knn: dict[str, Any] = {"vector": row}
    if method_parameters:
        knn["k"] = k
        knn["method_parameters"] = {"ef_search": int(ef_search)}
    else:
        knn["k"] = min(max(k, int(ef_search)), K_MAX)
    if clause is not None:
        knn["filter"] = clause
    return {"size": k, "query": {"knn": {FIELD: knn}}, "_source": {"excludes": [FIELD]}}


def entry_problem(id_: str, row: Sequence[float]) -> str | None:
    """Why ``(id_, row)`` cannot be stored, or None: an id OpenSearch refuses, or a vector that is
    not a unit vector (scores are cosine similarities only for unit vectors)."""
    size = len(id_.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return f"id is {size} bytes; OpenSearch ids are at most {MAX_ID_BYTES} bytes (UTF-8)"
    norm = math.sqrt(math.fsum(x * x for x in row))
    if abs(norm - 1.0) > NORM_TOLERANCE:
        return (f"vector has L2 norm {norm:.6g}, not 1: lookalike's scores are cosine similarities only for "
                "unit vectors; L2-normalise it first")
    return None
