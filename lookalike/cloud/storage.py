"""Where indexed images live in S3, and expiring links to them.

Key scheme (content-addressed, shared by every writer and reader):
``<images_prefix><id><ext>`` where ``id`` is the index id (first 16 hex digits of the file's
SHA-256, :func:`lookalike.ingest.image_id`) and ``ext`` is the lower-cased extension of the
file's ``path`` metadata (e.g. ``images/3f2a9c0d1e4b5a67.png``). The key depends only on the
file's bytes and type, so an index built locally and pushed, or built in the cloud, points at
the same objects, and uploading the same file twice is a no-op.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from ..errors import BackendUnavailable, ConfigError
from ..imaging import IMAGE_EXTENSIONS

logger = logging.getLogger(__name__)

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                 ".bmp": "image/bmp", ".gif": "image/gif", ".tif": "image/tiff", ".tiff": "image/tiff"}


def object_key(prefix: str, id: str, metadata: Mapping[str, Any] | None = None) -> str:
    """The S3 key of image ``id``: ``prefix + id + extension of metadata['path']``."""
    suffix = PurePath(str((metadata or {}).get("path") or "")).suffix.lower()
    return f"{prefix}{id}{suffix if suffix in IMAGE_EXTENSIONS else ''}"


def content_type_for(key: str) -> str:
    suffix = PurePath(key).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key)[0] or "application/octet-stream"


class PresignedUrls:
    """``url_for(id, metadata)`` for :class:`lookalike.service.SearchService`: a presigned S3 GET
    URL of the image, valid for ``ttl`` seconds. Signing is local (no request to S3)."""

    def __init__(self, s3, bucket: str, prefix: str, ttl: int):
        if not bucket:
            raise ConfigError("LOOKALIKE_IMAGES_BUCKET is not set; result URLs need the images bucket")
        if ttl < 1 or ttl > 7 * 24 * 3600:
            raise ConfigError(f"LOOKALIKE_URL_TTL_SECONDS={ttl} is not valid: must be in 1..604800 (7 days)")
        self.s3, self.bucket, self.prefix, self.ttl = s3, bucket, prefix, ttl

    @classmethod
    def from_settings(cls, settings, s3=None) -> PresignedUrls:
        from .aws import s3_client

        return cls(s3 or s3_client(settings), settings.images_bucket, settings.images_prefix,
                   settings.url_ttl_seconds)

    def __call__(self, id: str, metadata: Mapping[str, Any]) -> str:
        return self.s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": object_key(self.prefix, id, metadata)},
            ExpiresIn=self.ttl)


@dataclass
class UploadReport:
    uploaded: int = 0
    present: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"uploaded": self.uploaded, "present": self.present}


def upload_images(s3, bucket: str, prefix: str, paths: Iterable[PurePath]) -> UploadReport:
    """Upload image files under their content-addressed keys; objects already there are skipped."""
    from botocore.exceptions import BotoCoreError, ClientError

    from ..index.ingest import image_id  # the index's own id function, so keys and ids always agree

    report = UploadReport()
    for path in paths:
        data = Path(path).read_bytes()
        id_, _ = image_id(data)
        key = object_key(prefix, id_, {"path": str(path)})
        try:
            if _exists(s3, bucket, key):
                report.present += 1
                continue
            s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type_for(key),
                          CacheControl="private, max-age=86400")
        except (BotoCoreError, ClientError) as exc:
            raise BackendUnavailable(f"cannot upload {path} to s3://{bucket}/{key}: {exc}") from None
        report.uploaded += 1
    logger.info("s3://%s/%s: %d uploaded, %d already present", bucket, prefix, report.uploaded, report.present)
    return report


def _exists(s3, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
