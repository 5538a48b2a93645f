"""``_source`` filtering, from the body (``_source``) or the URL (``_source``,
``_source_includes``, ``_source_excludes``), with OpenSearch's wildcard and prefix rules."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

from .errors import parsing


def source_filter(body_spec: Any, params: dict[str, str]) -> Callable[[dict], dict | None]:
    """``_source`` filtering from the body (``_source``) or URL (``_source[_includes|_excludes]``)."""
    includes: list[str] = []
    excludes: list[str] = []
    enabled = True
    spec = body_spec
    if spec is None and "_source" in params:
        raw = params["_source"]
        spec = {"true": True, "false": False}.get(raw, raw.split(",") if raw else True)
    if isinstance(spec, bool):
        enabled = spec
    elif isinstance(spec, str):
        includes = [spec]
    elif isinstance(spec, list):
        includes = [str(s) for s in spec]
    elif isinstance(spec, dict):
        for key, value in spec.items():
            if key not in ("includes", "include", "excludes", "exclude"):
                raise parsing(f"Unknown key for a START_ARRAY in [{key}].")
            values = [value] if isinstance(value, str) else list(value)
            (includes if key.startswith("include") else excludes).extend(values)
    elif spec is not None:
        raise parsing("[_source] must be a boolean, a string, an array or an object")
    includes += [s for s in params.get("_source_includes", "").split(",") if s]
    excludes += [s for s in params.get("_source_excludes", "").split(",") if s]

    def keep(path: str, patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(path, p) or path.startswith(p + ".") for p in patterns)

    def walk(node: dict, prefix: str) -> dict:
        out = {}
        for key, value in node.items():
            path = prefix + key
            if keep(path, excludes):
                continue
            if isinstance(value, dict) and not keep(path, includes) and includes:
                sub = walk(value, path + ".")
                if sub:
                    out[key] = sub
            elif not includes or keep(path, includes):
                out[key] = value
        return out

    def apply(source: dict) -> dict | None:
        return walk(source, "") if enabled else None
    return apply
