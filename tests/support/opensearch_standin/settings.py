"""Index settings and index names, validated the way OpenSearch (with the k-NN plugin) does:
only the settings this stand-in knows are accepted, each with OpenSearch's own parse errors."""

from __future__ import annotations

import re
from typing import Any

from .errors import ApiError, bad_request

BAD_NAME_CHARS = set('\\/*?"<>| ,#:')


def _bool(key: str, value: Any) -> bool:
    if value is True or value == "true":
        return True
    if value is False or value == "false":
        return False
    raise bad_request(f"Failed to parse value [{_str(value)}] as only [true] or [false] are allowed.")


def _int_min(minimum: int):
    def parse(key: str, value: Any) -> int:
        try:
            number = int(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or (isinstance(value, float) and value != int(value)):
            raise bad_request(f"Failed to parse value [{_str(value)}] for setting [{key}]")
        if number < minimum:
            raise bad_request(f"Failed to parse value [{number}] for setting [{key}] must be >= {minimum}")
        return number
    return parse


def _interval(key: str, value: Any) -> str:
    if str(value) == "-1" or re.fullmatch(r"\d+(ms|s|m|h|d)", str(value)):
        return str(value)
    raise bad_request(f"failed to parse setting [{key}] with value [{value}] as a time value: "
                      "unit is missing or unrecognized")


# Settings this stand-in knows, each with its parser (all under "index.").
SETTINGS = {
    "index.knn": _bool,
    "index.knn.algo_param.ef_search": _int_min(2),
    "index.number_of_shards": _int_min(1),
    "index.number_of_replicas": _int_min(0),
    "index.refresh_interval": _interval,
    "index.max_result_window": _int_min(1),
}


def _str(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_settings(raw: Any) -> dict[str, Any]:
    """Flatten ``{"index": {"knn": true}}`` / ``{"index.knn": true}`` to ``{"index.knn": True}``."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise bad_request("settings must be an object", "settings_exception")
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: dict) -> None:
        for key, value in node.items():
            name = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(name, value)
            else:
                flat[name if name.startswith("index.") else f"index.{name}"] = value

    walk("", raw)
    out = {}
    for key, value in flat.items():
        parser = SETTINGS.get(key)
        if parser is None:
            raise bad_request(f"unknown setting [{key}] please check that any required plugins are installed, "
                              "or check the breaking changes documentation for removed settings")
        out[key] = parser(key, value)
    return out


def check_index_name(name: str) -> None:
    def invalid(why: str) -> ApiError:
        return ApiError(400, "invalid_index_name_exception", f"Invalid index name [{name}], {why}",
                        extra={"index": name, "index_uuid": "_na_"})
    if name != name.lower():
        raise invalid("must be lowercase")
    if name[:1] in {"_", "-", "+"}:
        raise invalid("must not start with '_', '-', or '+'")
    if name in {".", ".."}:
        raise invalid("must not be '.' or '..'")
    bad = sorted(BAD_NAME_CHARS & set(name))
    if bad:
        raise invalid(f"must not contain the following characters [{', '.join(bad)}]")
    if len(name.encode()) > 255:
        raise invalid(f"index name is too long, ({len(name.encode())} > 255)")
