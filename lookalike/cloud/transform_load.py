"""Batch ingest, the data plane: a transform job's ``.out`` files streamed into OpenSearch ``_bulk``.

Resumable and idempotent. Records are taken in chunks of ``batch_size``; for each chunk the ids
OpenSearch already holds are asked first (``_mget``, which is real-time) and only the others are
fetched from S3 and sent, so a re-run after an interruption loads only what is missing. Ids are
``_id``s: an entry sent twice (a run killed between a bulk request and its answer) is replaced,
never doubled. A record whose output is missing or malformed, or that OpenSearch rejects, is
reported with its key and reason and the rest goes on; only an unreachable cluster stops the load
(run it again). Memory is bounded by one chunk.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from ..errors import LookalikeError
from ..index.postprocess import PostProcess
from .transform import Record, S3Uri

MGET_CHUNK = 1000


@dataclass
class LoadReport:
    total: int = 0
    loaded: int = 0
    present: int = 0  # already in the index: not fetched, not sent
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    chunks: int = 0
    bulk_requests: int = 0
    retries: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "loaded": self.loaded, "present": self.present, "chunks": self.chunks,
                "bulk_requests": self.bulk_requests, "retries": self.retries, "seconds": round(self.seconds, 3),
                "failed": [{"key": k, "reason": r} for k, r in self.failed]}


def read_records(s3, records_uri: str) -> tuple[dict[str, Any], Iterator[Record]]:
    """The header and the (streamed) records of a job, as :func:`.transform.write_manifest` wrote them."""
    target = S3Uri.parse(records_uri)
    try:
        body = s3.get_object(Bucket=target.bucket, Key=target.key)["Body"]
    except Exception as exc:  # noqa: BLE001 - boto3 raises a generated NoSuchKey class per client
        raise LookalikeError(f"no records of that job at {records_uri}: {exc}", code="not_found") from None
    lines = (line for line in body.iter_lines() if line.strip())
    header = json.loads(next(lines))
    return header, (Record(**json.loads(line)) for line in lines)


def existing_ids(index, ids: list[str]) -> set[str]:
    """The ids of ``ids`` that ``index`` (an OpenSearchIndex, or None for a missing one) holds."""
    if index is None or not ids:
        return set()
    held: set[str] = set()
    for start in range(0, len(ids), MGET_CHUNK):
        docs = index.calls("check ids", index.client.mget, index=index.name, _source=False,
                           body={"ids": ids[start:start + MGET_CHUNK]})["docs"]
        held.update(d["_id"] for d in docs if d.get("found"))
    return held


def parse_output(data: bytes) -> tuple[list[float], int, str]:
    """One ``.out`` (``AssembleWith=Line``: the inference.py answer and a newline) → ``(row, dim, model)``;
    ValueError naming the bad line otherwise."""
    try:
        lines = [line for line in data.decode("utf-8").split("\n") if line.strip()]
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            answer = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number} is not JSON") from None
        try:
            vectors, dim, model = answer["vectors"], int(answer["dim"]), str(answer["model"])
            if not all(isinstance(v, list) and len(v) == dim for v in vectors):
                raise TypeError
            found = [[float(x) for x in v] for v in vectors]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ValueError(f"line {number} is not an answer of inference.py ({{vectors, dim, model}})") from None
        if not all(math.isfinite(x) for row in found for x in row):
            raise ValueError(f"line {number} holds a value that is not a finite number")
        rows += found
    if len(rows) != 1:
        raise ValueError(f"expected one vector (one image per record), found {len(rows)}")
    return rows[0], dim, model


class Outputs:
    """The ``.out`` of a record: ``<output prefix><relative key>.out`` (TransformOutput); if that is
    absent, the prefix is listed once and outputs are matched by their name's tail, in case the
    service nests them deeper than documented."""

    def __init__(self, s3, output: str):
        self.s3, self.target = s3, S3Uri.parse(output, folder=True)
        self._tails: dict[str, str] | None = None
        self._lock = threading.Lock()

    def fetch(self, rel: str) -> bytes | None:
        key = f"{self.target.key}{rel}.out"
        data = self._get(key)
        if data is None:
            other = self._by_tail().get(f"{rel}.out")
            data = self._get(other) if other and other != key else None
        return data

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        try:
            body = self.s3.get_object(Bucket=self.target.bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise
        try:
            return body.read()
        finally:
            body.close()

    def _by_tail(self) -> dict[str, str]:
        with self._lock:
            if self._tails is None:
                tails: dict[str, str] = {}
                pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.target.bucket,
                                                                          Prefix=self.target.key)
                for obj in (o for page in pages for o in page.get("Contents", [])):
                    parts = obj["Key"][len(self.target.key):].split("/")
                    for i in range(len(parts)):
                        tails.setdefault("/".join(parts[i:]), obj["Key"])
                self._tails = tails
            return self._tails


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    it = iter(records)
    while chunk := list(islice(it, size)):
        yield chunk


def load_outputs(s3, records: Iterable[Record], *, bucket: str, output: str, index,
                 create_index: Callable[[int, str], Any], job: str = "", batch_size: int = 500, workers: int = 16,
                 progress: Callable[[LoadReport], None] | None = None) -> LoadReport:
    """Upsert the vector of every record not yet in ``index`` from its ``.out`` under ``output``.

    ``index`` is an :class:`~lookalike.index.opensearch.OpenSearchIndex` or None when it does not
    exist yet; then ``create_index(dim, model)`` makes it from the first output. ``progress(report)``
    is called after every chunk."""
    from botocore.exceptions import BotoCoreError, ClientError

    report = LoadReport()
    started = time.perf_counter()
    outputs = Outputs(s3, output)

    def read(record: Record):
        try:
            data = outputs.fetch(record.rel)
        except (BotoCoreError, ClientError) as exc:
            return f"cannot read its output under {output}: {exc}"
        if data is None:
            return (f"no output {output}{record.rel}.out: the transform job did not process it (the model refused "
                    f"the image, or the job stopped); see the log streams {job}/... of CloudWatch Logs group "
                    "/aws/sagemaker/TransformJobs")
        try:
            return parse_output(data)
        except ValueError as exc:
            return f"bad output {output}{record.rel}.out: {exc}"

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for chunk in _chunks(records, batch_size):
            report.total += len(chunk)
            held = existing_ids(index, [r.id for r in chunk])
            report.present += len(held)
            ids, rows, metas, keys = [], [], [], []
            todo = [r for r in chunk if r.id not in held]
            for record, result in zip(todo, pool.map(read, todo)):
                if isinstance(result, str):
                    report.failed.append((record.key, result))
                    continue
                row, dim, model = result
                if index is None:
                    index = create_index(dim, model)
                wanted = index.model.get("name")
                if dim != index.dim or (wanted and model != wanted):
                    report.failed.append((record.key, f"made by {model!r} ({dim}-d) but OpenSearch index "
                                                      f"{index.name!r} holds {wanted!r} ({index.dim}-d) vectors"))
                    continue
                ids.append(record.id)
                rows.append(row)
                metas.append(record.metadata(bucket))
                keys.append(record.key)
            if ids:
                # The endpoint emits backbone vectors; an index pushed with post-processing stores transformed ones.
                bulk = index.bulk_index(ids, PostProcess.of_index(index).apply_rows(rows), metas)
                report.loaded += bulk.ok
                report.bulk_requests += bulk.batches
                report.retries += bulk.retries
                by_id = dict(zip(ids, keys))
                report.failed += [(by_id.get(i, i), f"OpenSearch refused it: {why}") for i, why in bulk.errors]
                if bulk.failed > len(bulk.errors):
                    report.failed.append((f"({bulk.failed - len(bulk.errors)} more in this chunk)",
                                          "OpenSearch refused them (reasons as above)"))
            report.chunks += 1
            if progress is not None:
                progress(report)
    if index is not None and report.loaded:
        index.save()  # visible to search now rather than at the next refresh
    report.seconds = time.perf_counter() - started
    return report
