"""``lookalike push``: copy a local FAISS index into OpenSearch without re-embedding.

The OpenSearch index is created from the local index's dimension and model info when it is
missing; entries are upserted by id, so pushing again is safe and cheap to reason about.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

CHUNK = 2_000  # entries read from the local index at a time


@dataclass
class PushReport:
    total: int = 0
    ok: int = 0
    failed: int = 0
    pruned: int = 0
    retries: int = 0
    batches: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)


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


def cmd_push(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..config import Settings
    from ..errors import ConfigError
    from .faiss_index import FaissIndex
    from .opensearch_index import OpenSearchIndex

    settings = Settings.from_env(
        index_dir=args.index_dir, opensearch_url=args.url, opensearch_index=args.index_name,
        opensearch_auth=args.auth, opensearch_username=args.user, opensearch_password=args.password,
        aws_region=args.region, opensearch_bulk_size=args.batch_size, opensearch_engine=args.engine)
    local = FaissIndex.load(settings.index_dir)
    if not local.model.get("name"):
        raise ConfigError(f"{settings.index_dir} does not record which model made its vectors; re-index it")
    remote = OpenSearchIndex.from_settings(settings, dim=local.dim, model=local.model, create=True,
                                           recreate=args.recreate)
    show = not args.quiet and (args.progress or sys.stderr.isatty())
    with tqdm(total=len(local), unit="vec", desc="push", disable=not show) as bar:
        report = push_index(local, remote, prune=args.prune, progress=bar.update)
    if args.json:
        print(json.dumps({**asdict(report), "index": remote.name, "url": remote.url}, indent=2))
    else:
        rate = report.ok / report.seconds if report.seconds else 0.0
        print(f"pushed {report.ok} of {report.total} entries to OpenSearch index {remote.name!r} at {remote.url}: "
              f"{report.failed} failed, {report.retries} retries, {report.batches} bulk requests"
              + (f", pruned {report.pruned}" if args.prune else "")
              + f" — {report.seconds:.1f}s, {rate:.0f}/s; index holds {len(remote)}")
        for id_, reason in report.errors:
            print(f"  failed: {id_}: {reason}")
    return 0 if report.failed == 0 else 1


def register(subparsers, common) -> None:
    """Add ``lookalike push`` (``common`` is not used: ``--batch-size`` here counts documents)."""
    p = subparsers.add_parser("push", help="copy the local index into OpenSearch (no re-embedding)",
                              description="Copy a local index's vectors and metadata into OpenSearch without "
                                          "re-embedding. A missing OpenSearch index is created with the local "
                                          "index's dimension and model; entries are upserted by id, so pushing "
                                          "again is safe.")
    p.add_argument("--to", choices=["opensearch"], required=True, help="destination backend")
    p.add_argument("--url", help="cluster endpoint, e.g. https://search-x.eu-west-1.es.amazonaws.com "
                                 "(env LOOKALIKE_OPENSEARCH_URL)")
    p.add_argument("--index-name", help="OpenSearch index (default lookalike; env LOOKALIKE_OPENSEARCH_INDEX)")
    p.add_argument("--index-dir", type=Path, help="local index folder (env LOOKALIKE_INDEX_DIR)")
    p.add_argument("--auth", choices=["none", "basic", "sigv4"], help="authentication (env LOOKALIKE_OPENSEARCH_AUTH)")
    p.add_argument("--user", help="user for --auth basic (env LOOKALIKE_OPENSEARCH_USERNAME)")
    p.add_argument("--password", help="password for --auth basic; prefer env LOOKALIKE_OPENSEARCH_PASSWORD, "
                                      "a flag is visible to other local users")
    p.add_argument("--region", help="AWS region for --auth sigv4 (env AWS_REGION)")
    p.add_argument("--batch-size", type=int, help="documents per bulk request (default 500; env "
                                                  "LOOKALIKE_OPENSEARCH_BULK_SIZE)")
    p.add_argument("--engine", choices=["faiss", "lucene"], help="HNSW engine if the index is created (default faiss)")
    p.add_argument("--prune", action="store_true", help="also delete OpenSearch entries the local index lacks")
    p.add_argument("--recreate", action="store_true",
                   help="delete and re-create the OpenSearch index first (e.g. after changing the model)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", action="store_true", help="progress bar even when stderr is not a terminal")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=cmd_push)
