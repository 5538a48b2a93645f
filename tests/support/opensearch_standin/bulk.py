"""``_bulk``: parse the NDJSON body, validate the whole request, then apply each item.

Two kinds of failure, as in OpenSearch:

- the *request* fails (400, nothing applied) when parsing or validation fails. Validation is
  all-or-nothing: opensearch-project/OpenSearch, server/src/main/java/org/opensearch/action/bulk/
  BulkRequest.java ``validate()`` gathers every item's errors into one
  ``action_request_validation_exception`` ("Validation Failed: 1: ...;2: ...;"). An index or
  create item whose id is over 512 bytes is such an error (server/src/main/java/org/opensearch/
  action/index/IndexRequest.java ``validate()``: "id [..] is too long, must be no longer than
  512 bytes but was: N"); a delete is not checked (action/delete/DeleteRequest.java).
- an *item* fails (the request answers 200 with ``errors: true``) for a mapping error, a missing
  index on delete, or an injected rejection. A delete of an absent id is not a failure: it answers
  ``result: not_found`` with status 404 (action/delete/DeleteResponse.java ``status()``) and leaves
  ``errors`` false (action/bulk/BulkResponse.java: ``errors`` is ``hasFailures()``).
"""

from __future__ import annotations

import json
import time
import uuid

from .errors import ApiError, bad_request, rejected, unsupported

SHARDS = {"total": 2, "successful": 1, "failed": 0}
BULK_META = {"_index", "_id", "routing", "version", "version_type", "if_seq_no", "if_primary_term", "pipeline",
             "require_alias", "retry_on_conflict", "_source"}
MAX_ID_BYTES = 512


def run_bulk(cluster, raw: bytes, default_index: str | None, refresh: bool, reject_items: list[int]) -> dict:
    """Apply an NDJSON bulk body; ``reject_items[0]`` index actions answer 429 (fault injection)."""
    started = time.perf_counter()
    actions = _parse(raw, default_index)
    _validate(actions)
    items, touched = [], set()
    for op, name, doc_id, source in actions:
        items.append({op: _item(cluster, op, name, doc_id, source, reject_items, touched)})
    if refresh:
        for name in touched:
            cluster.indices[name].refresh()
    return {"took": int((time.perf_counter() - started) * 1000),
            "errors": any("error" in next(iter(it.values())) for it in items), "items": items}


def _parse(raw: bytes, default_index: str | None) -> list[tuple]:
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
    return actions


def _validate(actions: list[tuple]) -> None:
    """BulkRequest.validate(): every item's validation errors, numbered, fail the whole request."""
    errors = []
    for op, _name, doc_id, _source in actions:
        if op != "delete" and doc_id is not None:
            size = len(str(doc_id).encode("utf-8"))
            if size > MAX_ID_BYTES:
                errors.append(f"id [{doc_id}] is too long, must be no longer than 512 bytes but was: {size}")
    if errors:
        numbered = "".join(f"{n}: {e};" for n, e in enumerate(errors, 1))
        raise ApiError(400, "action_request_validation_exception", f"Validation Failed: {numbered}")


def _item(cluster, op, name, doc_id, source, reject_items, touched) -> dict:
    head = {"_index": name, "_id": doc_id}
    try:
        if op == "delete":
            index = cluster.get(name)
            existed, version, seq_no = index.remove(str(doc_id))
            touched.add(name)
            return {**head, "_version": version, "result": "deleted" if existed else "not_found",
                    "_shards": SHARDS, "_seq_no": seq_no, "_primary_term": 1, "status": 200 if existed else 404}
        if reject_items and reject_items[0] > 0:
            reject_items[0] -= 1
            # ShardIndexingPressure's message for a shard over its indexing-memory limit.
            raise rejected("rejected execution of coordinating operation [shard_detail=[" + name + "][0][P], "
                           "shard_coordinating_and_primary_bytes=0, shard_operation_bytes=1024, "
                           "shard_max_coordinating_and_primary_bytes=1]")
        if isinstance(source, _BadJson):
            raise ApiError(400, "mapper_parsing_exception", "failed to parse",
                           caused_by={"type": "json_parse_exception", "reason": source.reason})
        if doc_id is None:
            doc_id = uuid.uuid4().hex[:20]
            head["_id"] = doc_id
        doc_id = str(doc_id)
        if name not in cluster.indices:  # action.auto_create_index: a plain index, dynamic mapping
            cluster.create(name, None)
        index = cluster.indices[name]
        result, doc = index.put(doc_id, source, create=op == "create")
        touched.add(name)
        return {**index.doc_meta(doc), "result": result, "_shards": SHARDS,
                "status": 201 if result == "created" else 200}
    except ApiError as exc:
        return {**head, "status": exc.status, "error": exc.detail()}


class _BadJson:
    def __init__(self, reason: str):
        self.reason = reason


def _reject_constant(name: str):
    raise ValueError(f"Non-standard token '{name}': enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow")
