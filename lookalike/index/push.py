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

    check_same_postprocessing(local, remote)
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


def check_same_postprocessing(local, remote) -> None:
    """Refuse to mix vectors of two post-processings in one OpenSearch index.

    The OpenSearch index keeps the transform in its mapping's ``_meta`` (written when it is
    created from the local index's model info) and the Lambda applies that one to queries; after
    a refit the local vectors match another one, so the index is re-created (``--recreate``).
    """
    from ..errors import ConfigError
    from .postprocess import PostProcess

    mine, theirs = PostProcess.of_index(local), PostProcess.of_index(remote)
    if mine.digest != theirs.digest:
        raise ConfigError(f"the local index's vectors went through post-processing {mine.kind} ({mine.digest}) but "
                          f"OpenSearch index {getattr(remote, 'name', '?')!r} holds {theirs.kind} ({theirs.digest}) "
                          "ones (a refit or another --postprocess): push with --recreate")
