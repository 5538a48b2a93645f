"""Turn a document ``_source`` into indexed values, growing the mapping dynamically.

A ``knn_vector`` value must be an array of ``dimension`` finite numbers (the k-NN plugin's
``Vector dimension mismatch. Expected: D, Given: G``). Unmapped fields follow
``dynamic``: ``true`` maps them (``dynamic_templates`` first, else OpenSearch's defaults:
strings → ``text`` + ``.keyword``, integers → ``long``, floats → ``float``, so an unmapped
vector becomes a plain ``float`` field that a ``knn`` query then refuses), ``false`` keeps
them in ``_source`` only, ``strict`` rejects the document.
"""

from __future__ import annotations

import fnmatch
import json
import math
import re
from typing import Any

import numpy as np

from .errors import ApiError
from .mapping import NUMBERS, Mapping

DEFAULT_STRING = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}


class Parsed:
    """Indexed form of one document: ``terms[field] = [values]``, ``vectors[field] = (dim,) float32``."""

    __slots__ = ("terms", "vectors", "new_fields")

    def __init__(self):
        self.terms: dict[str, list[Any]] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.new_fields: dict[str, dict[str, Any]] = {}


def _preview(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _field_error(path: str, kind: str, doc_id: str, value: Any, cause_type: str, cause: str) -> ApiError:
    preview = "null" if kind == "knn_vector" else _preview(value)
    return ApiError(400, "mapper_parsing_exception",
                    f"failed to parse field [{path}] of type [{kind}] in document with id '{doc_id}'. "
                    f"Preview of field's value: '{preview}'",
                    caused_by={"type": cause_type, "reason": cause})


def parse_document(mapping: Mapping, source: Any, doc_id: str) -> Parsed:
    """Validate ``source`` against ``mapping``; new dynamic fields land in ``Parsed.new_fields``."""
    if not isinstance(source, dict):
        raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                       caused_by={"type": "not_x_content_exception",
                                  "reason": "Compressor detection can only be called on some xcontent bytes "
                                            "or compressed xcontent bytes"})
    parsed = Parsed()
    _walk(mapping, parsed, source, "", doc_id, mapping.dynamic)
    return parsed


def _walk(mapping: Mapping, parsed: Parsed, obj: dict, prefix: str, doc_id: str, dynamic: Any) -> None:
    for key, value in obj.items():
        if not key or key.strip(".") != key or ".." in key:
            raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                           caused_by={"type": "illegal_argument_exception",
                                      "reason": f"field name cannot be an empty string or contain only dots: [{key}]"})
        path = prefix + key
        spec = mapping.fields.get(path) or parsed.new_fields.get(path)
        if spec is None:
            if value is None or value == []:
                continue
            if dynamic == "strict":
                parent = prefix[:-1] or "_doc"
                raise ApiError(400, "strict_dynamic_mapping_exception",
                               f"mapping set to strict, dynamic introduction of [{key}] within [{parent}] "
                               "is not allowed")
            if dynamic is False:
                continue
            spec = _dynamic_spec(mapping, key, path, value)
            parsed.new_fields[path] = spec
            for sub, subspec in spec.get("fields", {}).items():
                parsed.new_fields[f"{path}.{sub}"] = subspec
        kind = spec["type"]
        if kind == "object":
            if value is None or spec.get("enabled", True) is False:
                continue
            if not isinstance(value, dict):
                raise ApiError(400, "mapper_parsing_exception",
                               f"object mapping for [{path}] tried to parse field [{key}] as object, "
                               "but found a concrete value")
            child_dynamic = spec.get("dynamic", dynamic)
            _walk(mapping, parsed, value, f"{path}.", doc_id,
                  {"true": True, "false": False}.get(child_dynamic, child_dynamic))
        elif kind == "knn_vector":
            if value is not None:
                parsed.vectors[path] = _vector(path, value, mapping.knn[path], doc_id)
        else:
            _values(parsed, path, kind, spec, value, doc_id)


def _dynamic_spec(mapping: Mapping, key: str, path: str, value: Any) -> dict[str, Any]:
    sample = value
    while isinstance(sample, list):
        sample = next((v for v in sample if v is not None), None)
    if isinstance(sample, bool):
        kind = "boolean"
    elif isinstance(sample, int):
        kind = "long"
    elif isinstance(sample, float):
        kind = "double"
    elif isinstance(sample, str):
        kind = "string"
    else:
        kind = "object"
    for entry in mapping.dynamic_templates:
        template = next(iter(entry.values()))
        if template.get("match_mapping_type", "*") not in ("*", kind):
            continue
        if "match" in template and not fnmatch.fnmatchcase(key, template["match"]):
            continue
        if "unmatch" in template and fnmatch.fnmatchcase(key, template["unmatch"]):
            continue
        if "path_match" in template and not fnmatch.fnmatchcase(path, template["path_match"]):
            continue
        spec = dict(template["mapping"])
        spec.setdefault("type", {"string": "text", "double": "float"}.get(kind, kind))
        return spec
    if kind == "string":
        return json.loads(json.dumps(DEFAULT_STRING))
    return {"type": {"double": "float"}.get(kind, kind)}


def _vector(path: str, value: Any, knn, doc_id: str) -> np.ndarray:
    def fail(cause: str) -> ApiError:
        return _field_error(path, "knn_vector", doc_id, value, "illegal_argument_exception", cause)

    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise fail(f"Cannot parse vector: expected an array of numbers, found [{_preview(item)}]")
    if len(items) != knn.dimension:
        raise fail(f"Vector dimension mismatch. Expected: {knn.dimension}, Given: {len(items)}")
    array = np.asarray(items, dtype=np.float64).astype(np.float32)
    if np.isnan(array).any():
        raise fail("KNN vector values cannot be NaN")
    if np.isinf(array).any():
        raise fail("KNN vector values cannot be infinity")
    if knn.space_type == "cosinesimil" and not array.any():
        raise fail("zero vector is not supported when space type is [cosinesimil]")
    return array


def _values(parsed: Parsed, path: str, kind: str, spec: dict, value: Any, doc_id: str) -> None:
    items = value if isinstance(value, list) else [value]
    flat: list[Any] = []
    while items:
        item = items.pop(0)
        if isinstance(item, list):
            items[:0] = item
        elif item is not None:
            flat.append(item)
    out = parsed.terms.setdefault(path, [])
    for item in flat:
        if isinstance(item, dict):
            raise _field_error(path, kind, doc_id, value, "illegal_state_exception",
                               "Can't get text on a START_OBJECT")
        out.extend(_convert(path, kind, spec, item, doc_id, value))
        for sub, subspec in spec.get("fields", {}).items():
            parsed.terms.setdefault(f"{path}.{sub}", []).extend(
                _convert(f"{path}.{sub}", subspec["type"], subspec, item, doc_id, value))


def _convert(path: str, kind: str, spec: dict, item: Any, doc_id: str, whole: Any) -> list[Any]:
    if kind == "keyword":
        text = json.dumps(item) if isinstance(item, bool) else str(item)
        limit = spec.get("ignore_above")
        return [] if limit is not None and len(text) > limit else [text]
    if kind == "text":
        return re.findall(r"\w+", str(item).lower())
    if kind == "boolean":  # only true/false and "true"/"false"; 1 and 0 are rejected
        if item is True or item == "true":
            return [True]
        if item is False or item == "false":
            return [False]
        raise _field_error(path, kind, doc_id, whole, "illegal_argument_exception",
                           f"Failed to parse value [{item}] as only [true] or [false] are allowed.")
    if kind in NUMBERS:
        try:
            if isinstance(item, bool):
                raise ValueError
            number = float(item)
            if not math.isfinite(number):
                raise ValueError
        except (TypeError, ValueError):
            raise _field_error(path, kind, doc_id, whole, "number_format_exception",
                               f'For input string: "{item}"') from None
        return [int(number) if kind in ("long", "integer", "short", "byte") else number]
    return [str(item)]  # date and other types: compared as strings
