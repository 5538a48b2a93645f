"""boto3 clients built from :class:`~lookalike.config.Settings` (region, emulator endpoint).

Clients are built once per process by the caller and reused: creating one costs tens of
milliseconds, which would otherwise land on every Lambda request. boto3 is imported here,
lazily; the Lambda runtime provides it, so the Lambda package does not carry it.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError

DEFAULT_REGION = "us-east-1"


def region_of(settings) -> str:
    return settings.aws_region or DEFAULT_REGION


def client(service: str, settings, *, retries: int = 3, connect_timeout: float = 3.0, read_timeout: float = 30.0,
           **config: Any):
    """A boto3 client for ``service`` in ``settings.aws_region``; ``settings.endpoint_url`` (an
    emulator such as moto) replaces the AWS endpoint. Credentials come from the usual chain."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("boto3 is not installed; install lookalike[cloud]") from None
    options = {"region_name": region_of(settings),
               "retries": {"mode": "standard", "total_max_attempts": max(1, retries)},
               "connect_timeout": connect_timeout, "read_timeout": read_timeout, **config}
    return boto3.session.Session().client(service, endpoint_url=settings.endpoint_url or None,
                                          config=Config(**options))


def s3_client(settings):
    """An S3 client signing with SigV4 (presigned URLs carry ``X-Amz-Signature``); path-style
    addressing against an emulator, whose host cannot take bucket sub-domains."""
    style = "path" if settings.endpoint_url else "virtual"
    return client("s3", settings, signature_version="s3v4", s3={"addressing_style": style})


def sagemaker_runtime_client(settings, *, read_timeout: float = 65.0):
    """A SageMaker runtime client without botocore's own retries (the embedder retries itself)."""
    return client("sagemaker-runtime", settings, retries=1, read_timeout=read_timeout)
