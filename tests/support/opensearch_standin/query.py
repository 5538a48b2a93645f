"""``_search``/``_count`` bodies: the ``knn`` query (with efficient ``filter``), filter queries,
sorting with ``search_after``, paging limits and ``_source`` filtering.

What depends on the OpenSearch version (k-NN messages, ``method_parameters``, filter support,
scores) lives in :mod:`.versions`, with the upstream source of each rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .errors import ApiError, bad_request, parsing, query_failure, shard_failure, unsupported
from .source import source_filter
from .versions import engine_supports_filters, k_range_error, method_parameters_supported

K_MAX = 10_000
SEARCH_KEYS = {"query", "size", "from", "_source", "sort", "search_after", "track_total_hits"}
OTHER_SEARCH_KEYS = {"aggs", "aggregations", "collapse", "docvalue_fields", "explain", "fields", "highlight",
                     "indices_boost", "min_score", "pit", "post_filter", "profile", "rescore", "script_fields",
                     "seq_no_primary_term", "slice", "stats", "stored_fields", "suggest", "terminate_after",
                     "timeout", "version", "ext", "search_pipeline"}
OTHER_QUERIES = {"match", "match_phrase", "multi_match", "range", "prefix", "wildcard", "regexp", "fuzzy",
                 "query_string", "simple_query_string", "nested", "function_score", "script_score",
                 "constant_score", "dis_max", "boosting", "neural", "hybrid", "geo_distance", "script"}
KNN_KEYS = {"vector", "k", "filter", "boost", "_name", "method_parameters", "max_distance", "min_score",
            "rescore", "expand_nested_docs", "ignore_unmapped"}
Matcher = Callable[[Any], bool]


def one_query(query: Any, where: str) -> tuple[str, Any]:
    if not isinstance(query, dict) or not query:
        raise parsing(f"[{where}] query malformed, no start_object after query name")
    if len(query) != 1:
        first, second = list(query)[:2]
        raise parsing(f"[{first}] malformed query, expected [END_OBJECT] but found [FIELD_NAME] ({second})")
    return next(iter(query.items()))


def compile_filter(query: Any, index) -> Matcher:
    """A predicate over stored documents for a filter-context query (no ``knn`` inside)."""
    name, body = one_query(query, "query")
    if name == "match_all":
        return lambda doc: True
    if name == "match_none":
        return lambda doc: False
    if name == "term":
        field, value = _single_field(name, body)
        if isinstance(value, dict):
            extra = set(value) - {"value", "boost", "case_insensitive", "_name"}
            if extra or "value" not in value:
                raise parsing(f"[term] query does not support [{sorted(extra)[0] if extra else 'value'}]")
            value = value["value"]
        if isinstance(value, (list, dict)) or value is None:
            raise parsing("[term] query does not support array of values" if isinstance(value, list)
                          else "value must not be null")
        wanted = {_normalise(index, field, value)}
        return lambda doc: bool(wanted.intersection(doc.terms.get(field, ())))
    if name == "terms":
        fields = [k for k in body if k != "boost"] if isinstance(body, dict) else []
        if len(fields) != 1:
            raise parsing("[terms] query does not support multiple fields" if fields else "[terms] query malformed")
        values = body[fields[0]]
        if not isinstance(values, list):
            raise parsing(f"[terms] query does not support [{fields[0]}]")
        field = fields[0]
        wanted = {_normalise(index, field, v) for v in values}
        return lambda doc: bool(wanted.intersection(doc.terms.get(field, ())))
    if name == "ids":
        if not isinstance(body, dict) or not isinstance(body.get("values"), list):
            raise parsing("[ids] query malformed, [values] must be an array")
        ids = {str(v) for v in body["values"]}
        return lambda doc: doc.id in ids
    if name == "exists":
        if not isinstance(body, dict) or not isinstance(body.get("field"), str):
            raise parsing("[exists] must be provided with a [field]")
        field = body["field"]
        return lambda doc: bool(doc.terms.get(field)) or field in doc.vectors
    if name == "bool":
        return _bool(body, index)
    if name == "knn":
        raise unsupported("a knn query inside another query")
    if name in OTHER_QUERIES:
        raise unsupported(f"the [{name}] query")
    raise parsing(f"unknown query [{name}]")


def _single_field(name: str, body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or not body:
        raise parsing(f"[{name}] query malformed, no start_object after query name")
    fields = [k for k in body if k not in ("boost", "_name")]
    if len(fields) != 1:
        raise parsing(f"[{name}] query doesn't support multiple fields, found [{fields[0]}] and [{fields[1]}]")
    return fields[0], body[fields[0]]


def _normalise(index, field: str, value: Any) -> Any:
    kind = (index.mapping.fields.get(field) or {}).get("type")
    if kind == "knn_vector":
        raise query_failure(index.name, f"Field [{field}] of type [knn_vector] does not support term queries")
    if kind in ("long", "integer", "short", "byte", "double", "float", "half_float"):
        try:
            return float(value) if kind in ("double", "float", "half_float") else int(float(value))
        except (TypeError, ValueError):
            raise query_failure(index.name, f'For input string: "{value}"', "number_format_exception") from None
    if kind == "boolean":
        return value is True or value == "true"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bool(body: Any, index) -> Matcher:
    if not isinstance(body, dict):
        raise parsing("[bool] query malformed, no start_object after query name")
    clauses: dict[str, list[Matcher]] = {}
    for key, value in body.items():
        if key in ("must", "filter", "should", "must_not"):
            items = value if isinstance(value, list) else [value]
            clauses[key] = [compile_filter(q, index) for q in items]
        elif key not in ("minimum_should_match", "boost", "_name", "adjust_pure_negative"):
            raise parsing(f"[bool] query does not support [{key}]")
    required = clauses.get("must", []) + clauses.get("filter", [])
    should, must_not = clauses.get("should", []), clauses.get("must_not", [])
    minimum = body.get("minimum_should_match", 0 if required else (1 if should else 0))
    if isinstance(minimum, bool) or not isinstance(minimum, int):
        raise unsupported("minimum_should_match other than an integer")

    def match(doc) -> bool:
        if not all(m(doc) for m in required) or any(m(doc) for m in must_not):
            return False
        return sum(1 for m in should if m(doc)) >= minimum
    return match


def parse_knn(body: Any, index) -> dict[str, Any]:
    """Validate a top-level ``knn`` query against ``index``'s mapping, the way the k-NN plugin of
    ``index.version`` does (k-NN 2.19, src/main/java/org/opensearch/knn/index/query/
    parser/KNNQueryBuilderParser.java parses, KNNQueryBuilder.java ``Builder.validate`` checks the
    values, ``doToQuery`` checks them against the field)."""
    version = index.version
    field, params = _single_field("knn", body)
    if not isinstance(params, dict):
        raise parsing("[knn] query malformed, no start_object after query name")
    for key in params:
        if key not in KNN_KEYS:
            raise parsing(f"[knn] unknown field [{key}]")
    if "method_parameters" in params and not method_parameters_supported(version):
        raise parsing("[knn] unknown token [START_OBJECT]")
    vector = params.get("vector")
    if not isinstance(vector, list):
        raise bad_request("[knn] requires query vector")
    if not vector:
        raise bad_request("[knn] query vector is empty")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vector):
        raise parsing("[knn] failed to parse field [vector]")
    if not version.at_least(2, 14) and (params.get("max_distance") is not None or params.get("min_score") is not None):
        raise unsupported("max_distance/min_score before 2.14 (radial search came in 2.14)")
    set_count = sum(params.get(k) is not None for k in ("k", "max_distance", "min_score"))
    if set_count != 1 and version.at_least(2, 14):
        raise bad_request("[knn] requires exactly one of k, distance or score to be set")
    if params.get("k") is None and set_count:
        raise unsupported("radial search (max_distance/min_score)")
    k = params.get("k", 0)
    problem = k_range_error(version, k)
    if problem:
        raise bad_request(problem)
    for key in ("rescore", "expand_nested_docs"):
        if params.get(key) not in (None, False):
            raise unsupported(f"knn [{key}]")
    method_params = params.get("method_parameters") or {}
    for key, value in method_params.items():
        if key not in ("ef_search", "nprobes") or isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad_request(f"[knn] errors in method parameter [Validation Failed: 1: {key} is not a valid "
                              "positive integer or parameter;]")
    kind = (index.mapping.fields.get(field) or {}).get("type")
    if kind != "knn_vector":
        if kind is None and params.get("ignore_unmapped"):
            return {"field": field, "none": True}
        raise query_failure(index.name, f"Field '{field}' is not knn_vector type.")
    knn = index.mapping.knn[field]
    if knn.engine is None:
        raise query_failure(index.name, f"Field '{field}' is not built for ANN search.")
    if method_params and "ef_search" not in method_params:
        raise query_failure(index.name, f"Parameters not valid for [{knn.engine}]:[hnsw]:[k] combination: "
                            f"[{sorted(method_params)}]")
    if len(vector) != knn.dimension:
        raise query_failure(index.name, f"Query vector has invalid dimension: {len(vector)}. "
                            f"Dimension should be: {knn.dimension}")
    query = np.asarray(vector, dtype=np.float64).astype(np.float32)
    if knn.space_type == "cosinesimil" and not query.any():
        raise query_failure(index.name, "zero vector is not supported when space type is [cosinesimil]")
    flt = params.get("filter")
    if flt is not None and not engine_supports_filters(version, knn.engine):
        # The enum's name, not the engine's: String.format("Engine [%s] ...", knnEngine).
        raise query_failure(index.name, f"Engine [{knn.engine.upper()}] does not support filters")
    return {"field": field, "vector": query, "k": k, "space": knn.space_type, "engine": knn.engine,
            "knn_field": knn, "method_parameters": dict(method_params),
            "filter": compile_filter(flt, index) if flt is not None else None}


def as_json_float(score: np.float32) -> float:
    """A float32 as OpenSearch prints it (shortest decimal that round-trips in float32)."""
    return float(str(np.float32(score)))


def parse_sort(spec: Any, index) -> list[tuple[str, bool]]:
    """``[(field, descending)]``; rejects fields OpenSearch cannot sort on."""
    entries = spec if isinstance(spec, list) else [spec]
    out = []
    for entry in entries:
        if isinstance(entry, str):
            field, order = entry, "desc" if entry == "_score" else "asc"
        elif isinstance(entry, dict) and len(entry) == 1:
            field, opts = next(iter(entry.items()))
            order = opts if isinstance(opts, str) else (opts or {}).get("order", "asc")
            if isinstance(opts, dict) and set(opts) - {"order", "missing", "unmapped_type"}:
                raise unsupported(f"sort options {sorted(set(opts) - {'order'})}")
        else:
            raise parsing("[sort] malformed, expected a field name or an object with one field")
        if order not in ("asc", "desc"):
            raise bad_request(f"Unknown SortOrder [{order}]")
        if field not in ("_score", "_doc"):
            kind = (index.mapping.fields.get(field) or {}).get("type")
            if kind is None:  # FieldSortBuilder throws a QueryShardException itself: no "failed to create query"
                raise shard_failure(index.name, f"No mapping found for [{field}] in order to sort on",
                                    "query_shard_exception")
            if kind == "text":
                raise shard_failure(index.name, f"Text fields are not optimised for operations that require "
                                    f"per-document field data like aggregations and sorting, so these operations "
                                    f"are disabled by default. Please use a keyword field instead. Alternatively, "
                                    f"set fielddata=true on [{field}] in order to load field data by uninverting "
                                    f"the inverted index.", "illegal_argument_exception")
            if kind in ("knn_vector", "object"):
                raise shard_failure(index.name, f"Field [{field}] of type [{kind}] does not support sorting",
                                    "illegal_argument_exception")
        out.append((field, order == "desc"))
    return out


def check_window(index, size: Any, from_: Any) -> tuple[int, int]:
    for name, value in (("size", size), ("from", from_)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise parsing(f"[{name}] must be an integer, got [{value}]")
        if value < 0:
            raise bad_request(f"[{name}] parameter cannot be negative, found [{value}]")
    limit = index.settings.get("index.max_result_window", 10_000)
    if from_ + size > limit:
        raise shard_failure(index.name, f"Result window is too large, from + size must be less than or equal "
                            f"to: [{limit}] but was [{from_ + size}]. See the scroll api for a more efficient way "
                            f"to request large data sets. This limit can be set by changing the "
                            f"[index.max_result_window] index level setting.", "illegal_argument_exception")
    return size, from_


def check_body_keys(body: dict) -> None:
    for key in body:
        if key in OTHER_SEARCH_KEYS:
            raise unsupported(f"search option [{key}]")
        if key not in SEARCH_KEYS:
            raise parsing(f"Unknown key for a START_OBJECT in [{key}].")


__all__ = ["ApiError", "compile_filter", "parse_knn", "parse_sort", "source_filter", "source_filter",
           "check_window", "check_body_keys", "as_json_float", "K_MAX"]
