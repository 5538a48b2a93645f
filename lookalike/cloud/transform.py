"""Batch ingest, the control plane: the images under an S3 prefix, their content ids, the manifest
of those the index lacks, the SageMaker Batch Transform job over them and its progress.

Ids are the index's own (:func:`lookalike.index.ingest.image_id`: the first 16 hex digits of the
file's SHA-256), found without downloading an object wherever S3 already knows its hash:

1. ``key``: an object of the images bucket under the images prefix named ``<16 hex><ext>`` is a
   content-addressed upload (``lookalike cloud-upload``, :mod:`.storage`): the name *is* the id.
2. ``checksum``: an object uploaded with S3's additional checksum SHA-256 in one part carries the
   SHA-256 of its bytes (HeadObject with ``ChecksumMode=ENABLED``). A multipart upload's checksum
   is a checksum of the parts' checksums (type ``COMPOSITE``, value ``...-N``) and its ETag is not
   an MD5 of the content either, so neither is used.
3. ``hashed``: anything else is streamed once and hashed here (nothing is kept).

The job, per the SageMaker API reference (docs.aws.amazon.com/sagemaker/latest/APIReference/):
``ManifestFile`` input (API_TransformS3DataSource: a JSON list ``[{"prefix": "s3://b/p/"},
"relative/key", ...]``); ``SplitType=None`` (API_TransformInput: "request payloads contain the
entire contents of an input object": one image per request) with ``BatchStrategy=SingleRecord``;
``Accept=application/json`` and ``AssembleWith=Line`` (API_TransformOutput: "add a newline
character at the end of every transformed record"). Each input gets ``<S3OutputPath>/<relative
key>.out`` (API_TransformOutput: "stores the transformed data with an .out suffix in a
corresponding subfolder"; it "uploads only the output for successfully processed objects" and
marks the job failed if any fails). ``MaxPayloadInMB`` <= 100 and ``MaxConcurrentTransforms`` x
``MaxPayloadInMB`` <= 100 (API_CreateTransformJob; checked in ``Settings.validate``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any

from ..errors import ConfigError, LookalikeError
from ..imaging import IMAGE_EXTENSIONS
from .storage import content_type_for, object_key

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/octet-stream"  # inference.py decodes any supported image sent as raw bytes
ACCEPT = "application/json"
TERMINAL = ("Completed", "Failed", "Stopped")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str, *, folder: bool = False) -> S3Uri:
        match = re.fullmatch(r"s3://([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/?(.*)", uri or "")
        if not match:
            raise ConfigError(f"{uri!r} is not an s3://BUCKET/PREFIX URL")
        key = match.group(2)
        if folder and key and not key.endswith("/"):
            key += "/"  # a prefix is a folder: s3://b/photos means photos/..., not photos-old/...
        return cls(match.group(1), key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass
class Record:
    """One image of a batch: where it is, its id and label, and how the id was found."""

    key: str
    rel: str  # the key relative to the listed prefix: the manifest entry and the output's name
    id: str
    label: str
    source: str  # key | checksum | hashed
    sha256: str | None = None
    size: int = 0

    def metadata(self, bucket: str) -> dict[str, str]:
        meta = {"path": f"s3://{bucket}/{self.key}", "label": self.label}
        return {**meta, "sha256": self.sha256} if self.sha256 else meta


@dataclass
class Plan:
    """What a batch ingest of one prefix found: the records to embed and what it left out."""

    source: S3Uri
    records: list[Record] = field(default_factory=list)  # to embed: new to the index, one per id
    found: int = 0
    present: int = 0  # already in the index
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (key, id) of a copy of another key
    failed: list[tuple[str, str]] = field(default_factory=list)  # (key, reason)
    id_sources: dict[str, int] = field(default_factory=lambda: {"key": 0, "checksum": 0, "hashed": 0})

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "found": self.found, "new": len(self.records), "present": self.present,
                "duplicates": len(self.duplicates), "id_sources": self.id_sources,
                "failed": [{"key": k, "reason": r} for k, r in self.failed]}


def label_for_key(bucket: str, key: str) -> str:
    """As locally (:func:`lookalike.index.ingest.label_for`): the name of the "folder" holding it."""
    parts = PurePosixPath(key).parts
    return parts[-2] if len(parts) > 1 else bucket


def list_images(s3, source: S3Uri) -> Iterator[dict[str, Any]]:
    """ListObjectsV2 entries of image files under the prefix (by extension; hidden names skipped)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key):
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(source.key):]
            if any(part.startswith(".") for part in rel.split("/")) or obj["Key"].endswith("/"):
                continue
            if PurePosixPath(rel).suffix.lower() in IMAGE_EXTENSIONS:
                yield obj


def content_id(s3, bucket: str, obj: dict[str, Any], *, images_bucket: str | None,
               images_prefix: str) -> tuple[str, str | None, str]:
    """``(id, sha256 or None, source)`` of one listed object, reading as little as possible."""
    key = obj["Key"]
    name = PurePosixPath(key)
    if (bucket == images_bucket and key == f"{images_prefix}{name.name}" and _HEX16.match(name.stem)
            and name.suffix.lower() in IMAGE_EXTENSIONS):
        return name.stem, None, "key"
    single_part = "-" not in obj.get("ETag", "")
    if "SHA256" in (obj.get("ChecksumAlgorithm") or []) and single_part:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        value = head.get("ChecksumSHA256") or ""
        if value and "-" not in value and head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT":
            digest = base64.b64decode(value).hex()
            return digest[:16], digest, "checksum"
    from ..index.ingest import image_id  # the index's own id function, so ids always agree

    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        id_, digest = image_id(body.read())
    finally:
        body.close()
    return id_, digest, "hashed"


def plan_batch(s3, source: S3Uri, *, images_bucket: str | None, images_prefix: str,
               present: Callable[[list[str]], set[str]], workers: int = 16, chunk: int = 5000) -> Plan:
    """List, identify and sort the images under ``source``; ``present(ids)`` says which the index holds.

    Objects are taken ``chunk`` at a time, so memory grows with the new images only. An object that
    cannot be read or identified is recorded in ``plan.failed`` and skipped."""
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    from botocore.exceptions import BotoCoreError, ClientError

    plan = Plan(source)

    def identify(obj):
        try:
            return obj, content_id(s3, source.bucket, obj, images_bucket=images_bucket, images_prefix=images_prefix)
        except (BotoCoreError, ClientError, OSError) as exc:
            return obj, exc

    seen: set[str] = set()
    listing = list_images(s3, source)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while objects := list(islice(listing, chunk)):
            plan.found += len(objects)
            new: list[Record] = []
            for obj, result in pool.map(identify, objects):
                key = obj["Key"]
                if isinstance(result, Exception):
                    plan.failed.append((key, f"cannot read s3://{source.bucket}/{key}: {result}"))
                    continue
                id_, digest, how = result
                plan.id_sources[how] += 1
                if id_ in seen:
                    plan.duplicates.append((key, id_))
                    continue
                seen.add(id_)
                new.append(Record(key, key[len(source.key):], id_, label_for_key(source.bucket, key), how, digest,
                                  int(obj.get("Size", 0))))
            held = present([r.id for r in new])
            plan.present += sum(r.id in held for r in new)
            plan.records += [r for r in new if r.id not in held]
    return plan


def publish_images(s3, bucket: str, records: list[Record], images_bucket: str, images_prefix: str) -> int:
    """Server-side copies of the images to their content-addressed keys (what search result URLs
    point at, see :mod:`.storage`), skipping those already there; returns how many were copied."""
    existing = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=images_bucket, Prefix=images_prefix) for o in page.get("Contents", [])}
    copied = 0
    for record in records:
        target = object_key(images_prefix, record.id, {"path": record.key})
        if (bucket, record.key) == (images_bucket, target) or target in existing:
            continue
        s3.copy_object(Bucket=images_bucket, Key=target, CopySource={"Bucket": bucket, "Key": record.key},
                       MetadataDirective="REPLACE", ContentType=content_type_for(target),
                       CacheControl="private, max-age=86400")
        existing.add(target)
        copied += 1
    return copied


# ----- manifest, job, progress --------------------------------------------------------------
def job_name(now: datetime | None = None) -> str:
    """``lookalike-ingest-YYYYmmdd-HHMMSS`` (UTC): unique per second, within SageMaker's 63 characters."""
    return f"lookalike-ingest-{(now or datetime.now(timezone.utc)):%Y%m%d-%H%M%S}"


def job_paths(transform_prefix: str, job: str) -> dict[str, str]:
    """Where a job's manifest, records and outputs live under ``LOOKALIKE_TRANSFORM_PREFIX``."""
    base = transform_prefix.rstrip("/") + "/"
    return {"manifest": f"{base}manifests/{job}.manifest", "records": f"{base}manifests/{job}.records.jsonl",
            "output": f"{base}output/{job}/"}


def write_manifest(s3, paths: dict[str, str], plan: Plan, job: str) -> None:
    """The job's ManifestFile and, beside it, its records (JSON lines: a header, then one per image),
    from which any machine can load the outputs later."""
    manifest = [{"prefix": str(plan.source)}] + [r.rel for r in plan.records]
    header = {"job": job, "bucket": plan.source.bucket, "prefix": plan.source.key, "count": len(plan.records)}
    lines = [json.dumps(header)] + [json.dumps(asdict(r)) for r in plan.records]
    for name, body, kind in (("manifest", json.dumps(manifest), "application/json"),
                             ("records", "\n".join(lines) + "\n", "application/x-ndjson")):
        target = S3Uri.parse(paths[name])
        s3.put_object(Bucket=target.bucket, Key=target.key, Body=body.encode(), ContentType=kind)


def job_request(settings, job: str, paths: dict[str, str]) -> dict[str, Any]:
    """The CreateTransformJob request (boto3 ``create_transform_job`` keyword arguments)."""
    if not settings.transform_model:
        raise ConfigError("LOOKALIKE_TRANSFORM_MODEL is not set: the SageMaker model transform jobs run "
                          "(terraform output batch_ingest_environment)")
    output: dict[str, Any] = {"S3OutputPath": paths["output"], "Accept": ACCEPT, "AssembleWith": "Line"}
    resources: dict[str, Any] = {"InstanceType": settings.transform_instance_type,
                                 "InstanceCount": settings.transform_instance_count}
    if settings.transform_kms_key:
        output["KmsKeyId"] = resources["VolumeKmsKeyId"] = settings.transform_kms_key
    return {
        "TransformJobName": job,
        "ModelName": settings.transform_model,
        "MaxConcurrentTransforms": settings.transform_max_concurrent,
        "MaxPayloadInMB": settings.transform_max_payload_mb,
        "BatchStrategy": "SingleRecord",
        # One image takes well under a second; a request stuck for a minute is retried once.
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": 60, "InvocationsMaxRetries": 1},
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": paths["manifest"]}},
                           "ContentType": CONTENT_TYPE, "CompressionType": "None", "SplitType": "None"},
        "TransformOutput": output,
        "TransformResources": resources,
        "Tags": [{"Key": "Project", "Value": "lookalike"}],
    }


def check_input_allowed(settings, source: S3Uri) -> None:
    """Refuse a prefix the transform role may not read (LOOKALIKE_TRANSFORM_INPUT_PREFIXES)."""
    allowed = settings.transform_input_prefixes
    if allowed and not any(str(source).startswith(p) for p in allowed):
        raise ConfigError(f"the transform jobs' role may read only {', '.join(allowed)}, not {source}: add the "
                          "prefix to batch.input_prefixes in terraform.tfvars and apply, or copy the images there")


@dataclass
class Progress:
    status: str
    done: int
    total: int
    failure: str = ""

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def count_outputs(s3, output: str) -> int:
    target = S3Uri.parse(output)
    return sum(1 for page in s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.key)
               for o in page.get("Contents", []) if o["Key"].endswith(".out"))


def job_progress(sm, s3, job: str, output: str, total: int) -> Progress:
    """Status from DescribeTransformJob; objects done = ``.out`` files under the output prefix."""
    described = sm.describe_transform_job(TransformJobName=job)
    return Progress(described["TransformJobStatus"], count_outputs(s3, output), total,
                    described.get("FailureReason", ""))


def wait_for_job(sm, s3, job: str, output: str, total: int, *, poll: float,
                 report: Callable[[Progress], None] | None = None, sleep=time.sleep) -> Progress:
    """Poll until the job ends (Completed, Failed or Stopped); ``report`` sees every reading."""
    while True:
        progress = job_progress(sm, s3, job, output, total)
        if report is not None:
            report(progress)
        if progress.finished:
            return progress
        sleep(poll)

