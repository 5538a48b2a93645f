"""Copy a local FAISS index into OpenSearch without re-embedding (``lookalike push``).

The OpenSearch index is created from the local index's dimension and model info when it is
missing; entries are upserted by id, so pushing again is safe and cheap to reason about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .opensearch.bulk import BulkReport

CHUNK = 2_000  # entries read from the local index at a time


@dataclass
class PushReport(BulkReport):
    """A :class:`BulkReport` over the whole push, plus how many entries there were and were pruned."""

    total: int = 0
    pruned: int = 0


def push_index(local, remote, *, prune: bool = False, progress: Callable[[int], None] | None = None) -> PushReport:
    """Upsert every entry of ``local`` (vectors + metadata) into ``remote``, then refresh it.

    With ``prune``, entries of ``remote`` that ``local`` does not hold are deleted.
    """
    import time

    started = time.perf_counter()
    entries = list(local.items())
    report = PushReport(total=len(entries))
    for start in range(0, len(entries), CHUNK):
        chunk = entries[start:start + CHUNK]
        ids = [id_ for id_, _ in chunk]
        bulk = remote.bulk_index(ids, local.get_vectors(ids), [meta for _, meta in chunk], progress=progress)
        report.ok += bulk.ok
        report.failed += bulk.failed
        report.retries += bulk.retries
        report.batches += bulk.batches
        report.errors.extend(bulk.errors[:20 - len(report.errors)])
    if prune:
        keep = {id_ for id_, _ in entries}
        report.pruned = remote.delete([id_ for id_, _ in remote.items() if id_ not in keep])
    remote.save()
    report.seconds = time.perf_counter() - started
    return report
