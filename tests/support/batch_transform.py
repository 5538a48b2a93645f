"""What SageMaker Batch Transform does with each object of a job, against a real container.

moto stores a CreateTransformJob request (and calls it Completed) but runs nothing. This driver
plays the data plane for the request as stored: it reads the ManifestFile, and for every object
POSTs its bytes to the container's ``/invocations`` with the job's ContentType and Accept, one
record per request (``SplitType=None``, ``BatchStrategy=SingleRecord``), ``MaxConcurrentTransforms``
at a time, and writes the answer as ``<S3OutputPath>/<relative key>.out`` (plus a newline with
``AssembleWith=Line``). An object the container refuses gets no ``.out``, as in the service
(TransformOutput: "uploads only the output for successfully processed objects").
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


@dataclass
class DriverReport:
    written: list[str] = field(default_factory=list)  # output keys
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # input key -> (status, first line)
    seconds: float = 0.0  # wall time of all the invocations (S3 reads and writes included)


def run_transform_job(sagemaker_client, s3, container, job: str, *, concurrency: int | None = None) -> DriverReport:
    """Process every object of transform job ``job`` (as moto stores it) through ``container``."""
    described = sagemaker_client.describe_transform_job(TransformJobName=job)
    source = described["TransformInput"]["DataSource"]["S3DataSource"]
    assert source["S3DataType"] == "ManifestFile", source
    assert described["TransformInput"].get("SplitType", "None") == "None"
    assert described.get("BatchStrategy") == "SingleRecord"
    bucket, key = _split(source["S3Uri"])
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    prefix, entries = manifest[0]["prefix"], manifest[1:]
    in_bucket, in_prefix = _split(prefix)
    out_bucket, out_prefix = _split(described["TransformOutput"]["S3OutputPath"])
    out_prefix = out_prefix.rstrip("/") + "/" if out_prefix else ""
    content_type = described["TransformInput"].get("ContentType")
    accept = described["TransformOutput"].get("Accept")
    newline = b"\n" if described["TransformOutput"].get("AssembleWith") == "Line" else b""
    report = DriverReport()

    def one(rel: str) -> None:
        data = s3.get_object(Bucket=in_bucket, Key=in_prefix + rel)["Body"].read()
        status, _, body = container.invoke(data, content_type, accept)
        if status != 200:
            report.refused[in_prefix + rel] = (status, body.decode("utf-8", "replace").split("\n", 1)[0])
            return
        out_key = f"{out_prefix}{rel}.out"
        s3.put_object(Bucket=out_bucket, Key=out_key, Body=body + newline)
        report.written.append(out_key)

    workers = concurrency or max(1, int(described.get("MaxConcurrentTransforms") or 1))
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, entries))
    report.seconds = time.perf_counter() - started
    return report


# ----- the stack a batch-ingest test talks to: moto (S3, SageMaker) and the OpenSearch stand-in ----
ARTIFACTS_BUCKET = "lookalike-test-artifacts"
IMAGES_BUCKET = "lookalike-test-images"
PHOTOS_BUCKET = "lookalike-test-photos"
TRANSFORM_PREFIX = f"s3://{ARTIFACTS_BUCKET}/batch/"
TRANSFORM_MODEL = "lookalike-test-batch"
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"


def batch_settings(moto_url: str, opensearch_url: str, index: str = "batch") -> dict[str, str]:
    """The LOOKALIKE_* environment ``make ingest`` exports, pointed at the local stand-ins."""
    return {"LOOKALIKE_ENDPOINT_URL": moto_url, "AWS_REGION": "us-east-1",
            "LOOKALIKE_OPENSEARCH_URL": opensearch_url, "LOOKALIKE_OPENSEARCH_INDEX": index,
            "LOOKALIKE_IMAGES_BUCKET": IMAGES_BUCKET, "LOOKALIKE_IMAGES_PREFIX": "images/",
            "LOOKALIKE_TRANSFORM_MODEL": TRANSFORM_MODEL, "LOOKALIKE_TRANSFORM_PREFIX": TRANSFORM_PREFIX,
            "LOOKALIKE_TRANSFORM_KMS_KEY": KMS_KEY, "LOOKALIKE_TRANSFORM_POLL_SECONDS": "0.2"}


def prepare_account(moto) -> None:
    """The buckets and the transform model that Terraform would have made."""
    import boto3

    s3 = moto.s3()
    for bucket in (ARTIFACTS_BUCKET, IMAGES_BUCKET, PHOTOS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    sm = boto3.client("sagemaker", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    sm.create_model(ModelName=TRANSFORM_MODEL, ExecutionRoleArn="arn:aws:iam::123456789012:role/lookalike-test-batch",
                    PrimaryContainer={"Image": "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.3.0-cpu-py311",
                                      "ModelDataUrl": f"s3://{ARTIFACTS_BUCKET}/models/0123456789abcdef/model.tar.gz"})


def sagemaker_client(moto):
    import boto3

    return boto3.client("sagemaker", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test")


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 600):
    """``lookalike ARGS`` in a fresh process with exactly these settings (and fake AWS credentials)."""
    import subprocess
    import sys

    from tests.conftest import command_env
    from tests.support.cloud import AWS_TEST_ENV

    return subprocess.run([sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=command_env({**AWS_TEST_ENV, **env}, drop=("LOOKALIKE_", "AWS_")))
