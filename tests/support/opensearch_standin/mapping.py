"""Mappings, validated the way OpenSearch (with the k-NN plugin) does; index settings and names
are :mod:`.settings`.

Rules come from the OpenSearch documentation: *k-NN vector* (field parameters, dimension
1..16,000), *Methods and engines* (engines ``faiss``/``lucene``/``nmslib``; per-engine
spaces and HNSW parameters; ``ivf`` needs training), *Spaces*, and the k-NN plugin's mapper
(``Cannot set modelId or method parameters when index.knn setting is false``; unknown
parameters rejected). What changed between releases cites the plugin's code at ``HNSW_SPACES``
and ``NMSLIB_BLOCKED_FROM``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError, bad_request, mapper_parsing, unsupported
from .settings import _str, check_index_name, parse_settings

__all__ = ["Mapping", "KnnField", "parse_mapping", "parse_settings", "check_index_name", "NUMBERS"]

MAX_DIMENSION = 16_000
ENGINES = ("faiss", "lucene", "nmslib")
SPACES = ("l1", "l2", "linf", "cosinesimil", "innerproduct", "hamming", "hammingbit")
# (engine, space) -> first OpenSearch version supporting it for HNSW on float vectors. Lucene inner
# product: k-NN 2.13, src/main/java/org/opensearch/knn/index/util/Lucene.java adds INNER_PRODUCT to the
# HNSW spaces; faiss cosine: k-NN 2.19, index/engine/faiss/Faiss.java maps COSINESIMIL (2.18 has no entry).
HNSW_SPACES = {
    "faiss": {"l2": (1, 0), "innerproduct": (1, 0), "cosinesimil": (2, 19)},
    "lucene": {"l2": (2, 2), "cosinesimil": (2, 2), "innerproduct": (2, 13)},
    "nmslib": {"l2": (1, 0), "innerproduct": (1, 0), "cosinesimil": (1, 0), "l1": (1, 0), "linf": (1, 0)},
}
HNSW_PARAMETERS = {"faiss": {"m", "ef_construction", "ef_search", "encoder"},
                   "lucene": {"m", "ef_construction", "encoder"},
                   "nmslib": {"m", "ef_construction"}}
NMSLIB_BLOCKED_FROM = (3, 0)  # k-NN 3.0, index/engine/KNNEngine.java: NMSLIB(..., Version.V_3_0_0)

COMMON = {"type", "meta", "boost"}
FIELD_PARAMS = {
    "keyword": COMMON | {"ignore_above", "index", "doc_values", "store", "null_value", "normalizer", "norms",
                         "eager_global_ordinals", "fields", "similarity", "index_options",
                         "split_queries_on_whitespace", "copy_to"},
    "text": COMMON | {"analyzer", "search_analyzer", "fields", "index", "store", "norms", "fielddata",
                      "index_options", "position_increment_gap", "similarity", "term_vector", "copy_to"},
    "boolean": COMMON | {"doc_values", "index", "null_value", "store"},
    "date": COMMON | {"format", "doc_values", "index", "null_value", "store", "ignore_malformed", "locale"},
    "object": {"type", "properties", "dynamic", "enabled"},
    "knn_vector": {"type", "dimension", "data_type", "space_type", "mode", "compression_level", "method",
                   "model_id", "doc_values", "store"},
}
NUMBERS = ("long", "integer", "short", "byte", "double", "float", "half_float")
for _t in NUMBERS:
    FIELD_PARAMS[_t] = COMMON | {"coerce", "doc_values", "ignore_malformed", "index", "null_value", "store"}
ROOT_PARAMS = {"properties", "_meta", "dynamic", "dynamic_templates", "_source", "_routing", "date_detection",
               "numeric_detection"}


@dataclass
class KnnField:
    """A resolved ``knn_vector`` mapping."""

    dimension: int
    space_type: str
    engine: str | None  # None: no method (index.knn false, exact search only)
    method: dict[str, Any] = field(default_factory=dict)


def parse_knn_field(name: str, spec: dict, index_settings: dict, version: tuple[int, int]) -> KnnField:
    """Validate a ``knn_vector`` mapping; errors are the cause of a ``mapper_parsing_exception``."""
    if "model_id" in spec:
        raise unsupported("knn_vector fields built from a trained model (model_id)")
    if spec.get("data_type", "float") != "float":
        if spec["data_type"] not in ("byte", "binary"):
            raise bad_request("Invalid value provided for [data_type] field. "
                              "Supported values are [binary, byte, float]")
        raise unsupported(f"data_type [{spec['data_type']}]")
    if spec.get("mode", "in_memory") not in ("in_memory", "on_disk"):
        raise bad_request(f"Unable to find mode: {spec['mode']}")
    if spec.get("mode", "in_memory") != "in_memory" or spec.get("compression_level", "1x") != "1x":
        raise unsupported("mode/compression_level other than in_memory/1x")
    dimension = spec.get("dimension")
    if dimension is None:
        raise bad_request(f"Dimension value missing for vector: {name}")
    if isinstance(dimension, bool) or not isinstance(dimension, (int, str)) or not str(dimension).isdigit():
        raise bad_request(f"Unable to parse [dimension] from provided value [{dimension}] for vector [{name}]")
    dimension = int(dimension)
    if dimension <= 0:
        raise bad_request(f"Dimension value must be greater than 0 for vector: {name}")
    if dimension > MAX_DIMENSION:
        raise bad_request(f"Dimension value cannot be greater than {MAX_DIMENSION} for vector: {name}")
    top_space = spec.get("space_type")
    if top_space is not None and top_space not in SPACES:
        raise bad_request(f"Unable to find space: {top_space}")
    method = spec.get("method")
    if not index_settings.get("index.knn", False):
        if method is not None:
            raise bad_request("Cannot set modelId or method parameters when index.knn setting is false")
        return KnnField(dimension, top_space or "l2", None)
    if method is None:
        method = {"name": "hnsw"}
    if not isinstance(method, dict):
        raise bad_request('Unable to parse mapping into KNNMethodContext. Object not of type "Map"')
    for key in method:
        if key not in ("name", "engine", "space_type", "parameters"):
            raise bad_request(f"Invalid parameter: {key}")
    if not method.get("name"):
        raise bad_request("name needs to be set")
    engine = method.get("engine", "faiss")
    if engine not in ENGINES:
        raise bad_request(f"Invalid engine: {engine}")
    space = method.get("space_type")
    if space is not None and space not in SPACES:
        raise bad_request(f"Invalid space_type: {space}")
    if space and top_space and space != top_space:
        raise bad_request('Space type in "method" and top level space type should be same or one of them '
                          "should be defined")
    space = space or top_space or "l2"
    if engine == "nmslib" and version >= NMSLIB_BLOCKED_FROM:
        raise bad_request("nmslib engine is deprecated in OpenSearch  and cannot be used for new index creation "
                          "in OpenSearch from  3.0.0.")
    name_ = method["name"]
    if name_ == "ivf" and engine == "faiss":
        raise bad_request('"method" requires training.', "validation_exception")
    if name_ != "hnsw":
        raise bad_request(f"Validation Failed: 1: Invalid method name: {name_};", "validation_exception")
    since = HNSW_SPACES[engine].get(space)
    if since is None or version < since:
        raise bad_request(f'Validation Failed: 1: "hnsw" with "{engine}" configuration does not support space '
                          f'type: "{space}".;', "validation_exception")
    params = method.get("parameters") or {}
    if not isinstance(params, dict):
        raise bad_request("Unable to parse parameters for main method component")
    for key, value in params.items():
        if key not in HNSW_PARAMETERS[engine]:
            raise bad_request(f"Validation Failed: 1: Invalid parameter for hnsw: {key};", "validation_exception")
        if key == "encoder":
            if not (isinstance(value, dict) and value.get("name") == "flat"):
                raise unsupported("vector encoders other than flat")
        elif isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad_request(f"Validation Failed: 1: value is not a positive Integer for parameter [{key}];",
                              "validation_exception")
    return KnnField(dimension, space, engine, {"name": "hnsw", "parameters": dict(params)})


@dataclass
class Mapping:
    """The parsed mapping of one index (flat field paths → field spec)."""

    fields: dict[str, dict[str, Any]]
    knn: dict[str, KnnField]
    meta: dict[str, Any] | None
    dynamic: Any
    dynamic_templates: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        props: dict[str, Any] = {}
        for path, spec in self.fields.items():
            node = props
            parts = path.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {}).setdefault("properties", {})
            node.setdefault(parts[-1], {}).update({k: v for k, v in spec.items() if k != "properties"})
        out: dict[str, Any] = {}
        if self.dynamic is not True:
            out["dynamic"] = _str(self.dynamic)
        if self.meta is not None:
            out["_meta"] = self.meta
        if self.dynamic_templates:
            out["dynamic_templates"] = self.dynamic_templates
        if props:
            out["properties"] = props
        return out


def parse_mapping(raw: Any, index_settings: dict, version: tuple[int, int]) -> Mapping:
    """Validate ``mappings`` of a create-index request."""
    prefix = "Failed to parse mapping [_doc]"
    raw = raw or {}
    if not isinstance(raw, dict):
        raise mapper_parsing(f"{prefix}: Expected map for property [mappings] but got a {type(raw).__name__}")
    extra = [k for k in raw if k not in ROOT_PARAMS]
    if extra:
        shown = ", ".join(f"{k} : {raw[k]}" for k in extra)
        raise mapper_parsing(f"Root mapping definition has unsupported parameters:  [{shown}]")
    meta = raw.get("_meta")
    if meta is not None and not isinstance(meta, dict):
        raise mapper_parsing(f"{prefix}: [_meta] must be an object, got [{meta}]")
    dynamic = raw.get("dynamic", True)
    if dynamic not in (True, False, "true", "false", "strict"):
        raise mapper_parsing(f"{prefix}: Could not convert [dynamic] to boolean", None)
    dynamic = {"true": True, "false": False}.get(dynamic, dynamic)
    templates = raw.get("dynamic_templates", [])
    check_templates(templates, prefix)
    mapping = Mapping({}, {}, meta, dynamic, templates)
    try:
        add_properties(mapping, raw.get("properties", {}), "", index_settings, version)
    except ApiError as exc:
        if exc.type in ("mapper_parsing_exception", "standin_unsupported_exception"):
            raise
        raise mapper_parsing(prefix, exc.reason, exc.type) from None
    return mapping


def check_templates(templates: Any, prefix: str) -> None:
    if not isinstance(templates, list):
        raise mapper_parsing(f"{prefix}: Dynamic template syntax error. An array of named objects is expected.")
    for entry in templates:
        if not (isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict)):
            raise mapper_parsing(f"{prefix}: Dynamic template syntax error. An array of named objects is expected.")
        body = next(iter(entry.values()))
        if "mapping" not in body:
            raise mapper_parsing(f"{prefix}: template must have a mapping set")
        for key in body:
            if key not in ("match_mapping_type", "match", "unmatch", "path_match", "path_unmatch", "mapping"):
                raise mapper_parsing(f"{prefix}: Illegal dynamic template parameter: [{key}]")
        if body.get("match_mapping_type", "*") not in ("*", "string", "long", "double", "boolean", "object"):
            raise mapper_parsing(f"{prefix}: No field type matched on [{body['match_mapping_type']}], "
                                 "possible values are [object, string, long, double, boolean, date, binary]")


def add_properties(mapping: Mapping, props: Any, prefix: str, index_settings: dict,
                   version: tuple[int, int]) -> None:
    """Add validated field specs under ``prefix`` (raises ``ApiError`` for the first bad one)."""
    if not isinstance(props, dict):
        raise bad_request("Expected map for property [properties]")
    for name, spec in props.items():
        path = f"{prefix}{name}"
        if not isinstance(spec, dict):
            raise bad_request(f"Expected map for property [fields] on field [{name}] but got a class "
                              f"java.lang.{type(spec).__name__}")
        kind = spec.get("type", "object" if "properties" in spec else None)
        if kind is None:
            raise bad_request(f"No type specified for field [{name}]", "mapper_parsing_exception")
        if kind not in FIELD_PARAMS:
            raise ApiError(400, "mapper_parsing_exception", f"No handler for type [{kind}] declared on field [{name}]")
        for key in spec:
            if key not in FIELD_PARAMS[kind]:
                raise ApiError(400, "mapper_parsing_exception",
                               f"unknown parameter [{key}] on mapper [{name}] of type [{kind}]")
        if kind == "knn_vector":
            if set('\\/*?"<>| ,') & set(path):
                raise bad_request(f"Vector field name must not include invalid characters. "
                                  f"Provided field name=[{path}]")
            mapping.knn[path] = parse_knn_field(path, spec, index_settings, version)
        mapping.fields[path] = {k: v for k, v in spec.items() if k != "properties"}
        if kind == "object":
            mapping.fields[path]["type"] = "object"
            add_properties(mapping, spec.get("properties", {}), f"{path}.", index_settings, version)
