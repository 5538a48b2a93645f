"""``_bulk`` writes: batches bounded by count and bytes, items answered 429/5xx sent again with
backoff, every other failure counted with its id and reason (never raised mid-load).

Entries OpenSearch would refuse are kept out of the requests and counted as failed items here:
an id over 512 bytes does not fail alone but makes OpenSearch refuse the *whole* ``_bulk``
request (``BulkRequest.validate()`` gathers each ``IndexRequest.validate()`` error into one
``action_request_validation_exception``), which would fail every other entry of the batch.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .client import RETRYABLE, Calls, reason
from .mapping import FIELD, MAX_ID_BYTES, RESERVED, entry_problem, vector_json

logger = logging.getLogger(__name__)

MAX_BATCH_BYTES = 5_000_000  # under the smallest HTTP payload limit of Amazon OpenSearch Service (10 MB)
Action = tuple[str, str, str]  # (id, "index" | "delete", NDJSON lines)


@dataclass
class BulkReport:
    """What one bulk load did; ``errors`` keeps the first few ``(id, reason)`` failures."""

    ok: int = 0
    failed: int = 0  # includes ``invalid``
    invalid: int = 0  # refused before sending (see entry_problem): the caller's data, not the cluster
    not_found: int = 0
    retries: int = 0
    batches: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)


def index_actions(ids: Sequence[str], rows: Sequence[Sequence[float]],
                  metadata: Sequence[Mapping[str, Any]]) -> tuple[list[Action], list[tuple[str, str]]]:
    """Upserts by ``_id`` (the id is also stored as a keyword field for sorting and paging), and the
    ``(id, reason)`` of entries that cannot be stored (:func:`~.mapping.entry_problem`)."""
    if not (len(ids) == len(rows) == len(metadata)):
        raise ValueError(f"add: got {len(ids)} ids, {len(rows)} vectors, {len(metadata)} metadata records")
    if len(set(ids)) != len(ids):
        raise ValueError("add: ids must be unique within one call")
    actions, refused = [], []
    for id_, row, meta in zip(ids, rows, metadata):
        if not isinstance(id_, str) or not id_:
            raise ValueError(f"add: ids must be non-empty strings, got {id_!r}")
        clash = [k for k in RESERVED if k in meta]
        if clash:
            raise ValueError(f"add: metadata of {id_!r} uses reserved field(s) {clash}")
        problem = entry_problem(id_, row)
        if problem:
            refused.append((id_, problem))
            continue
        doc = json.dumps({"id": id_, **meta})
        source = f'{{"{FIELD}":{vector_json(row)},{doc[1:]}'
        actions.append((id_, "index", json.dumps({"index": {"_id": id_}}) + "\n" + source + "\n"))
    return actions, refused


def delete_actions(ids: Sequence[str]) -> list[Action]:
    # An id too long to store cannot be there; deleting it is a no-op, so it is not sent.
    return [(i, "delete", json.dumps({"delete": {"_id": i}}) + "\n") for i in ids
            if len(i.encode("utf-8")) <= MAX_ID_BYTES]


def short_id(id_: str, limit: int = 60) -> str:
    """``id_`` cut for messages (an over-long id is the very thing being reported)."""
    return id_ if len(id_) <= limit else id_[:limit] + f"... ({len(id_)} chars)"


class BulkWriter:
    """Sends actions to one index in batches of at most ``batch_size`` items and ``MAX_BATCH_BYTES``."""

    def __init__(self, client, name: str, calls: Calls, *, batch_size: int = 500, max_retries: int = 5,
                 timeout: float = 120.0):
        self.client, self.name, self.calls = client, name, calls
        self.batch_size, self.max_retries = max(1, int(batch_size)), max_retries
        self.timeout = timeout  # a 5 MB batch may take a while; a retry after a timeout re-sends it all

    def run(self, actions: list[Action], progress: Callable[[int], None] | None = None,
            refused: Sequence[tuple[str, str]] = ()) -> BulkReport:
        """Send ``actions``; ``refused`` entries (not sent) are counted as failed and invalid."""
        report = BulkReport(failed=len(refused), invalid=len(refused),
                            errors=[(short_id(i), why) for i, why in refused[:20]])
        if refused and progress is not None:
            progress(len(refused))
        started = time.perf_counter()
        batch: list[Action] = []
        size = 0
        for action in actions:
            if batch and (len(batch) >= self.batch_size or size + len(action[2]) > MAX_BATCH_BYTES):
                self._send(batch, report, progress)
                batch, size = [], 0
            batch.append(action)
            size += len(action[2])
        if batch:
            self._send(batch, report, progress)
        report.seconds = time.perf_counter() - started
        if actions or refused:
            logger.info("bulk %s: %d ok, %d failed, %d not found, %d retries in %.1fs", self.name, report.ok,
                        report.failed, report.not_found, report.retries, report.seconds)
        return report

    def _send(self, batch: list[Action], report: BulkReport, progress) -> None:
        """One batch; items answered 429/5xx are sent again with backoff, others counted."""
        pending = batch

        def count_retry() -> None:
            report.retries += 1

        for attempt in range(self.max_retries + 1):
            response = self.calls("bulk", self.client.bulk, on_retry=count_retry, timeout=self.timeout,
                                  index=self.name, body="".join(a[2] for a in pending))
            retry = []
            for action, item in zip(pending, response["items"]):
                result = next(iter(item.values()))
                status = int(result.get("status", 500))
                if action[1] == "delete" and result.get("result") == "not_found":
                    report.not_found += 1
                elif 200 <= status < 300:
                    report.ok += 1
                elif status in RETRYABLE and attempt < self.max_retries:
                    retry.append(action)
                else:
                    report.failed += 1
                    if len(report.errors) < 20:
                        report.errors.append((action[0], reason({"error": result.get("error", status)})))
            if attempt == 0:
                report.batches += 1
            if progress is not None:
                progress(len(pending) - len(retry))
            if not retry:
                return
            pending = retry
            report.retries += 1
            time.sleep(self.calls.backoff(attempt))
