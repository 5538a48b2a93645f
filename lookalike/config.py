"""Settings, read in one place.

Every ``LOOKALIKE_*`` environment variable is read here and nowhere else. Tests and the
CLI pass their own mapping (``Settings.from_env({...})``) and keyword overrides, so no
other module touches ``os.environ``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import limits
from .errors import ConfigError

PREFIX = "LOOKALIKE_"
LAMBDA_PAYLOAD_LIMIT = limits.MAX_REQUEST_BYTES  # see lookalike.limits
ENGINES = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8", "bf16", "int8-bf16", "int8-w7")
# Precisions that run a quantized file; int8-bf16 runs what int8 leaves in float in bf16; int8-w7 runs
# another file, its weights in half the int8 range, for CPUs without VNNI (lookalike.embedders.quantize).
QUANTIZED = ("int8", "int8-bf16", "int8-w7")
HALF_RANGE = ("int8-w7",)
POSTPROCESSING = ("none", "power-center")
def _default_data_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local" / "share")
    return Path(base).expanduser() / "lookalike"


def _default_cache_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(base).expanduser() / "lookalike"


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _optional_path(raw: str) -> Path | None:
    return Path(raw).expanduser() if raw.strip() else None


def _optional_str(raw: str) -> str | None:
    return raw or None


def opensearch_serverless_problem(url: str) -> str | None:
    """Why ``url`` cannot be the index, if it is an OpenSearch Serverless collection (``*.aoss.*``).

    Refused here, when the settings are read, rather than per document later: vector search
    collections reject a document id in index/create ("Document ID is not supported in
    create/index operation request") and answer 404 to _refresh, and the index protocol's
    upserts and deletes by id and its read-after-write need both.
    """
    from urllib.parse import urlsplit

    if ".aoss." not in (urlsplit(url).hostname or ""):
        return None
    return ("OpenSearch Serverless collections (*.aoss.amazonaws.com) are not supported: they refuse document "
            "ids in _bulk and have no _refresh, and lookalike upserts and deletes by id; use an Amazon "
            "OpenSearch Service domain (terraform/modules/search_domain) or a self-managed cluster")


@dataclass(frozen=True)
class Settings:
    """All configuration of lookalike. Field ``foo_bar`` is read from ``LOOKALIKE_FOO_BAR``."""

    # Where the index lives and what embeds images.
    index_dir: Path = Path("~/.local/share/lookalike/index").expanduser()
    cache_dir: Path = Path("~/.cache/lookalike").expanduser()
    backbone: str = "efficientnet-lite2"
    weights: Path | None = None  # a user-supplied weights file for the backbone (e.g. ResNet50)
    model: Path | None = None  # any ONNX feature extractor, with PATH.json preprocessing spec
    head: Path | None = None  # an ONNX head applied after the backbone (e.g. a triplet head)
    classifier: Path | None = None  # two-step search: predict the query's class, search only that class
    datasets_dir: Path | None = None  # where `make datasets` unpacked the labelled sets (evaluation only)
    batch_size: int = limits.BATCH_SIZE
    checkpoint_every: int = 5000  # `lookalike index` saves after this many new images (and at the end)
    workers: int = max(1, min(4, os.cpu_count() or 1))
    threads: int = 0  # ONNX Runtime intra-op threads; 0 lets it use all cores
    # How the model runs. None: what the index was built with; for a new index, the default
    # chosen by measurement (see lookalike.embedders). Both are part of the model fingerprint.
    engine: str | None = None  # onnxruntime | openvino
    precision: str | None = None  # fp32 | int8 | bf16 | int8-bf16 | int8-w7
    # Label-free post-processing of the vectors, fitted on the collection and stored with the
    # index. None: what the index has; for a new index, "none".
    postprocess: str | None = None

    # Index structure (lookalike.index.structures): exact inner product below hnsw_threshold, HNSW
    # over hnsw_storage codes above it, IVF over fp16 codes from ivf_threshold, IVF-PQ from
    # ivfpq_threshold (0 = never, each). The defaults keep 1M x 1280-d under 4 GB RSS at
    # recall@10 >= 0.95 in under 2 ms a query (docs/BENCHMARKS.md, "Index at 100k and 1M").
    hnsw_threshold: int = 10_000
    # efConstruction below 2M (the bottom layer's links) links every candidate found; above it FAISS's
    # pruning heuristic drops close neighbours of tight clusters (docs/BENCHMARKS.md, 2026-12-07).
    hnsw_m: int = 48
    hnsw_ef_construction: int = 80  # 1M vectors build in 8.5 minutes on 2 cores
    hnsw_ef_search: int = 0  # 0: by the index's size (lookalike.index.breadth); a number fixes it
    hnsw_storage: str = "fp16"  # fp16 | sq8 | flat: bytes a dimension 2 | 1 | 4 (sq8: recall 0.85 at 1M)
    # HNSW met the targets at 100k (0.996, 1.4 ms), not at 1M (0.95 at 2.7 ms), where fp16 IVF did
    # (0.960 at 1.2-1.8 ms with 8 of 4,096 lists); at 500k the two are level, IVF the smaller.
    ivf_threshold: int = 500_000
    ivf_nprobe: int = 8
    ivfpq_threshold: int = 2_000_000  # fp16 codes of 1280-d hold 2.6 KB an entry: 2M ~ 5.2 GB
    ivfpq_nprobe: int = 32
    index_compact_fraction: float = 0.2  # rebuild once tombstones pass this fraction of positions

    # Request limits, shared by the local API and the Lambda.
    max_request_bytes: int = limits.MAX_REQUEST_BYTES
    max_image_pixels: int = limits.MAX_IMAGE_PIXELS
    k_default: int = limits.K_DEFAULT
    k_max: int = limits.K_MAX
    decode_budget_pixels: int = limits.DECODE_BUDGET_PIXELS
    decode_wait_seconds: float = limits.DECODE_WAIT_SECONDS
    header_timeout: float = 10.0  # seconds a client has to send its request line and headers
    body_timeout: float = 60.0  # seconds a client has to send its whole body (6 MB over ~1 Mbit/s)

    # HTTP server.
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    web_dir: Path | None = None
    thumb_size: int = 256
    log_level: str = "INFO"

    # Cloud mode (Lambda + SageMaker + OpenSearch).
    sagemaker_endpoint: str | None = None
    opensearch_url: str | None = None
    opensearch_index: str = "lookalike"
    opensearch_auth: str = "none"  # none | basic | sigv4
    opensearch_username: str | None = None
    opensearch_password: str | None = None
    opensearch_engine: str = "faiss"  # faiss | lucene (HNSW engine of a new index)
    opensearch_bulk_size: int = 500  # documents per _bulk request (also capped at ~5 MB)
    opensearch_max_retries: int = 5  # retries with backoff on 429/5xx/connection errors (the Lambda uses 1)
    # Seconds one OpenSearch request may take (a k-NN search takes milliseconds). The Lambda has at
    # most 29 s for the whole search, SageMaker included: its 2 attempts (1 retry) x 8 s + back-off
    # leave 12 s for the rest. A caller with a hard limit also uses opensearch.deadline().
    opensearch_timeout: float = 8.0
    opensearch_bulk_timeout: float = 120.0  # one _bulk batch (~5 MB) during indexing, never on the query path
    aws_region: str | None = None
    images_bucket: str | None = None
    images_prefix: str = "images/"
    url_ttl_seconds: int = 900
    endpoint_url: str | None = None  # overrides AWS endpoints (emulators)

    # Batch ingest (SageMaker Batch Transform over S3, then a bulk load; set by Terraform).
    transform_model: str | None = None  # the SageMaker model transform jobs run (same archive as the endpoint)
    transform_prefix: str | None = None  # s3://BUCKET/PREFIX/ holding manifests/ and output/ of the jobs
    transform_input_prefixes: tuple[str, ...] = ()  # s3:// prefixes the transform role may read (empty: any)
    transform_kms_key: str | None = None  # KMS key for the job's output objects and ML storage volume
    transform_instance_type: str = "ml.c5.xlarge"
    transform_instance_count: int = 1
    transform_max_concurrent: int = 4  # MaxConcurrentTransforms: parallel requests per instance
    transform_max_payload_mb: int = 6  # MaxPayloadInMB: the largest image a job accepts
    transform_poll_seconds: float = 30.0  # how often progress is read while a job runs

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``LOOKALIKE_*`` variables in ``environ`` (default: the process
        environment), then apply ``overrides`` (e.g. CLI flags); ``None`` overrides are ignored."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {
            "index_dir": _default_data_home(env) / "index",
            "cache_dir": _default_cache_home(env),
        }
        if "AWS_REGION" in env:  # set by the Lambda runtime
            values["aws_region"] = env["AWS_REGION"]
        for f in dataclasses.fields(cls):
            key = PREFIX + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            try:
                values[f.name] = _CASTS[f.name](raw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"{key}={raw!r} is not valid: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        def need(ok: bool, key: str, value: Any, why: str) -> None:
            if not ok:
                raise ConfigError(f"{PREFIX}{key.upper()}={value!r} is not valid: {why}")

        need(self.batch_size >= 1, "batch_size", self.batch_size, "must be >= 1")
        need(self.workers >= 1, "workers", self.workers, "must be >= 1")
        need(self.checkpoint_every >= 1, "checkpoint_every", self.checkpoint_every, "must be >= 1")
        need(self.threads >= 0, "threads", self.threads, "must be >= 0")
        need(self.engine in (None, *ENGINES), "engine", self.engine, f"must be one of {', '.join(ENGINES)}")
        need(self.precision in (None, *PRECISIONS), "precision", self.precision,
             f"must be one of {', '.join(PRECISIONS)}")
        need(self.postprocess in (None, *POSTPROCESSING), "postprocess", self.postprocess,
             f"must be one of {', '.join(POSTPROCESSING)}")
        need(1 <= self.k_default <= self.k_max, "k_default", self.k_default, f"must be in 1..{self.k_max}")
        need(self.k_max >= 1, "k_max", self.k_max, "must be >= 1")
        need(self.max_request_bytes >= 1024, "max_request_bytes", self.max_request_bytes, "must be >= 1024")
        need(self.max_image_pixels >= 1, "max_image_pixels", self.max_image_pixels, "must be >= 1")
        # An image larger than the budget is admitted alone (DecodeBudget), so any value works.
        need(self.decode_budget_pixels >= 1, "decode_budget_pixels", self.decode_budget_pixels, "must be >= 1")
        need(self.decode_wait_seconds >= 0, "decode_wait_seconds", self.decode_wait_seconds, "must be >= 0")
        need(self.header_timeout > 0, "header_timeout", self.header_timeout, "must be > 0")
        need(self.body_timeout > 0, "body_timeout", self.body_timeout, "must be > 0")
        need(self.hnsw_threshold >= 0, "hnsw_threshold", self.hnsw_threshold, "must be >= 0")
        need(self.hnsw_m >= 4, "hnsw_m", self.hnsw_m, "must be >= 4")
        need(self.hnsw_ef_construction >= 8, "hnsw_ef_construction", self.hnsw_ef_construction, "must be >= 8")
        need(self.hnsw_ef_search >= 0, "hnsw_ef_search", self.hnsw_ef_search, "must be >= 0 (0: by the index's size)")
        need(self.hnsw_storage in {"sq8", "fp16", "flat"}, "hnsw_storage", self.hnsw_storage,
             "must be one of sq8, fp16, flat")
        need(self.ivf_threshold >= 0, "ivf_threshold", self.ivf_threshold, "must be >= 0")
        need(self.ivf_nprobe >= 1, "ivf_nprobe", self.ivf_nprobe, "must be >= 1")
        need(self.ivfpq_threshold >= 0, "ivfpq_threshold", self.ivfpq_threshold, "must be >= 0")
        need(self.ivfpq_nprobe >= 1, "ivfpq_nprobe", self.ivfpq_nprobe, "must be >= 1")
        need(0 < self.index_compact_fraction < 1, "index_compact_fraction", self.index_compact_fraction,
             "must be between 0 and 1")
        need(0 < self.port < 65536, "port", self.port, "must be in 1..65535")
        need(self.thumb_size >= 16, "thumb_size", self.thumb_size, "must be >= 16")
        need(self.opensearch_auth in {"none", "basic", "sigv4"}, "opensearch_auth", self.opensearch_auth,
             "must be one of none, basic, sigv4")
        need(self.opensearch_engine in {"faiss", "lucene"}, "opensearch_engine", self.opensearch_engine,
             "must be faiss or lucene (nmslib is deprecated)")
        need(self.opensearch_bulk_size >= 1, "opensearch_bulk_size", self.opensearch_bulk_size, "must be >= 1")
        need(self.opensearch_max_retries >= 0, "opensearch_max_retries", self.opensearch_max_retries, "must be >= 0")
        need(self.opensearch_timeout > 0, "opensearch_timeout", self.opensearch_timeout, "must be > 0 (seconds)")
        need(self.opensearch_bulk_timeout > 0, "opensearch_bulk_timeout", self.opensearch_bulk_timeout,
             "must be > 0 (seconds)")
        problem = opensearch_serverless_problem(self.opensearch_url or "")
        need(problem is None, "opensearch_url", self.opensearch_url, problem or "")
        need(self.transform_instance_count >= 1, "transform_instance_count", self.transform_instance_count,
             "must be >= 1")
        need(self.transform_instance_type.startswith("ml."), "transform_instance_type", self.transform_instance_type,
             "must be a SageMaker instance type such as ml.c5.xlarge")
        # CreateTransformJob: MaxPayloadInMB <= 100 and MaxConcurrentTransforms * MaxPayloadInMB <= 100.
        need(1 <= self.transform_max_payload_mb <= 100, "transform_max_payload_mb", self.transform_max_payload_mb,
             "must be in 1..100 (a SageMaker limit)")
        need(0 <= self.transform_max_concurrent * self.transform_max_payload_mb <= 100, "transform_max_concurrent",
             self.transform_max_concurrent, f"times transform_max_payload_mb ({self.transform_max_payload_mb}) "
             "must be in 0..100 MB (a SageMaker limit)")
        need(self.transform_prefix is None or (self.transform_prefix.startswith("s3://")
                                               and self.transform_prefix.endswith("/")),
             "transform_prefix", self.transform_prefix, "must be an s3://BUCKET/PREFIX/ URL ending with /")
        need(self.transform_poll_seconds > 0, "transform_poll_seconds", self.transform_poll_seconds, "must be > 0")
        need("*" not in self.cors_origins or len(self.cors_origins) == 1, "cors_origins", self.cors_origins,
             "'*' cannot be combined with other origins")

    def replace(self, **changes: Any) -> Settings:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new


_CASTS: dict[str, Callable[[str], Any]] = {}
for _f in dataclasses.fields(Settings):
    _type = str(_f.type)
    if _f.name in ("cors_origins", "transform_input_prefixes"):
        _CASTS[_f.name] = _csv
    elif _type == "int":
        _CASTS[_f.name] = int
    elif _type == "float":
        _CASTS[_f.name] = float
    elif _type == "bool":
        _CASTS[_f.name] = _bool
    elif _type == "Path":
        _CASTS[_f.name] = _path
    elif _type == "Path | None":
        _CASTS[_f.name] = _optional_path
    elif _type == "str | None":
        _CASTS[_f.name] = _optional_str
    else:
        _CASTS[_f.name] = str
del _f, _type

__all__ = ["Settings", "LAMBDA_PAYLOAD_LIMIT"]
