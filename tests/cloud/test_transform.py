"""Batch ingest, the control plane, against moto on 127.0.0.1: listing an S3 prefix, content ids
found without downloading where S3 knows the hash, the manifest, the CreateTransformJob request
field by field (as moto's DescribeTransformJob returns it) and progress."""

from __future__ import annotations

import json

import pytest

from lookalike.cloud.storage import upload_images
from lookalike.cloud.transform import (Progress, S3Uri, job_paths, job_progress, label_for_key, plan_batch,
                                       wait_for_job)
from lookalike.index.ingest import image_id
from tests.conftest import demo_images
from tests.support.batch_transform import (IMAGES_BUCKET, KMS_KEY, PHOTOS_BUCKET, TRANSFORM_MODEL, TRANSFORM_PREFIX,
                                           batch_settings, prepare_account, run_cli, sagemaker_client)
from tests.support.cloud import MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # starts moto on 127.0.0.1

IMAGES = demo_images()[:24]
SOURCE = S3Uri(PHOTOS_BUCKET, "collection/")


def upload_mixed(s3, paths, prefix: str = "collection/") -> dict[str, str]:
    """Upload ``paths`` as uploads come: a third with a SHA-256 checksum in one part, a third without
    any, a third multipart with SHA-256 (a COMPOSITE checksum); → {key: how}."""
    how = {}
    for i, path in enumerate(paths):
        key, data = f"{prefix}{path.parent.name}/{path.name}", path.read_bytes()
        if i % 3 == 0:
            s3.put_object(Bucket=PHOTOS_BUCKET, Key=key, Body=data, ChecksumAlgorithm="SHA256")
            how[key] = "checksum"
        elif i % 3 == 1:
            s3.put_object(Bucket=PHOTOS_BUCKET, Key=key, Body=data)
            how[key] = "hashed"
        else:
            upload = s3.create_multipart_upload(Bucket=PHOTOS_BUCKET, Key=key, ChecksumAlgorithm="SHA256")
            part = s3.upload_part(Bucket=PHOTOS_BUCKET, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=data,
                                  ChecksumAlgorithm="SHA256")
            s3.complete_multipart_upload(Bucket=PHOTOS_BUCKET, Key=key, UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1,
                                                                     "ChecksumSHA256": part["ChecksumSHA256"]}]})
            how[key] = "hashed"  # COMPOSITE: a checksum of part checksums, not of the content
    return how


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    try:
        prepare_account(server)
        s3 = server.s3()
        server.uploaded = upload_mixed(s3, IMAGES)
        s3.put_object(Bucket=PHOTOS_BUCKET, Key="collection/birds/.hidden.png", Body=IMAGES[0].read_bytes())
        s3.put_object(Bucket=PHOTOS_BUCKET, Key="collection/README.txt", Body=b"not an image")
        s3.put_object(Bucket=PHOTOS_BUCKET, Key="collection-old/birds/x.png", Body=IMAGES[0].read_bytes())
        yield server
    finally:
        server.stop()


def counting(s3) -> dict[str, int]:
    calls = {"GetObject": 0, "HeadObject": 0}

    def count(event_name, **_):
        calls[event_name.rsplit(".", 1)[-1]] += 1

    for op in calls:
        s3.meta.events.register(f"before-call.s3.{op}", count)
    return calls


def test_ids_are_the_content_hashes_and_downloads_only_what_s3_cannot_tell(moto):
    s3 = moto.s3()
    calls = counting(s3)
    plan = plan_batch(s3, SOURCE, images_bucket=IMAGES_BUCKET, images_prefix="images/", present=lambda ids: set())
    expected = {f"collection/{p.parent.name}/{p.name}": image_id(p.read_bytes()) for p in IMAGES}
    assert plan.found == len(IMAGES)  # the hidden file, README.txt and the sibling prefix collection-old/ left out
    assert {r.key: (r.id, r.sha256) for r in plan.records} == expected
    assert {r.key: r.source for r in plan.records} == moto.uploaded
    assert {r.key: r.label for r in plan.records} == {k: k.split("/")[1] for k in expected}
    assert all(r.rel == r.key.removeprefix("collection/") for r in plan.records)
    checksummed = sum(v == "checksum" for v in moto.uploaded.values())
    assert plan.id_sources == {"key": 0, "checksum": checksummed, "hashed": len(IMAGES) - checksummed}
    # One HEAD per single-part SHA-256 object, one GET per object whose hash S3 cannot give.
    assert calls == {"HeadObject": checksummed, "GetObject": len(IMAGES) - checksummed}


def test_content_addressed_keys_are_ids_without_any_read(moto):
    s3 = moto.s3()
    upload_images(s3, IMAGES_BUCKET, "images/", IMAGES[:5])
    calls = counting(s3)
    plan = plan_batch(s3, S3Uri(IMAGES_BUCKET, "images/"), images_bucket=IMAGES_BUCKET, images_prefix="images/",
                      present=lambda ids: set())
    assert sorted(r.id for r in plan.records) == sorted(image_id(p.read_bytes())[0] for p in IMAGES[:5])
    assert {r.source for r in plan.records} == {"key"} and calls == {"GetObject": 0, "HeadObject": 0}
    assert {r.label for r in plan.records} == {"images"}  # the folder holding them, as `lookalike index` says
    assert all(r.sha256 is None for r in plan.records)
    # The same names elsewhere prove nothing: another bucket's 16-hex names are hashed.
    other = plan_batch(s3, S3Uri(PHOTOS_BUCKET, "collection/"), images_bucket="someone-else", images_prefix="images/",
                       present=lambda ids: set())
    assert "key" not in {r.source for r in other.records}


def test_present_and_duplicate_images_are_left_out(moto):
    s3 = moto.s3()
    copy_key = "collection/copies/again.png"
    s3.put_object(Bucket=PHOTOS_BUCKET, Key=copy_key, Body=IMAGES[1].read_bytes())
    try:
        held = {image_id(p.read_bytes())[0] for p in IMAGES[:10]}
        asked = []
        plan = plan_batch(s3, SOURCE, images_bucket=IMAGES_BUCKET, images_prefix="images/", chunk=7,
                          present=lambda ids: asked.append(len(ids)) or held & set(ids))
        assert sum(asked) == len(IMAGES) and max(asked) <= 7  # asked chunk by chunk, each id once
        assert plan.found == len(IMAGES) + 1 and plan.present == 10
        assert {r.id for r in plan.records} == {image_id(p.read_bytes())[0] for p in IMAGES[10:]}
        assert plan.duplicates == [(copy_key, image_id(IMAGES[1].read_bytes())[0])]
    finally:
        s3.delete_object(Bucket=PHOTOS_BUCKET, Key=copy_key)


def test_labels_follow_the_folder_holding_the_key():
    assert label_for_key("b", "photos/birds/crow.png") == "birds"
    assert label_for_key("b", "crow.png") == "b"
    assert S3Uri.parse("s3://bucket/photos", folder=True) == S3Uri("bucket", "photos/")
    with pytest.raises(Exception, match="not an s3://BUCKET/PREFIX URL"):
        S3Uri.parse("/local/folder")


def test_create_transform_job_request_field_by_field(moto, opensearch_standin):
    env = batch_settings(moto.url, opensearch_standin.url)
    proc = run_cli(["cloud-batch", f"s3://{PHOTOS_BUCKET}/collection", "--no-wait", "--json", "--job-name", "job-a",
                    "--instance-type", "ml.m5.xlarge", "--instance-count", "3", "--max-concurrent-transforms", "2",
                    "--max-payload-mb", "8"], env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    paths = job_paths(TRANSFORM_PREFIX, "job-a")
    assert out["job"] == {"name": "job-a", **paths} and out["plan"]["new"] == len(IMAGES)

    job = sagemaker_client(moto).describe_transform_job(TransformJobName="job-a")
    assert job["ModelName"] == TRANSFORM_MODEL
    assert job["BatchStrategy"] == "SingleRecord"
    assert job["MaxConcurrentTransforms"] == 2 and job["MaxPayloadInMB"] == 8
    assert job["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 60, "InvocationsMaxRetries": 1}
    assert job["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": paths["manifest"]}},
        "ContentType": "application/octet-stream", "CompressionType": "None", "SplitType": "None"}
    assert job["TransformOutput"] == {"S3OutputPath": paths["output"], "Accept": "application/json",
                                      "AssembleWith": "Line", "KmsKeyId": KMS_KEY}
    assert job["TransformResources"] == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 3, "VolumeKmsKeyId": KMS_KEY}
    assert paths["manifest"] == f"{TRANSFORM_PREFIX}manifests/job-a.manifest"
    assert paths["output"] == f"{TRANSFORM_PREFIX}output/job-a/"

    # The ManifestFile: [{"prefix": ...}, relative keys...] naming exactly the new images.
    s3 = moto.s3()
    bucket, key = paths["manifest"].removeprefix("s3://").split("/", 1)
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest[0] == {"prefix": f"s3://{PHOTOS_BUCKET}/collection/"}
    assert sorted(manifest[1:]) == sorted(k.removeprefix("collection/") for k in moto.uploaded)
    for rel in manifest[1:]:  # each names an object the job can read
        s3.head_object(Bucket=PHOTOS_BUCKET, Key="collection/" + rel)
    # The images were also copied to their content-addressed keys (what search results link to).
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=IMAGES_BUCKET, Prefix="images/")["Contents"]}
    assert {f"images/{image_id(p.read_bytes())[0]}.png" for p in IMAGES} <= listed


def test_limits_and_the_roles_input_prefixes_are_checked_before_any_job(moto, opensearch_standin):
    env = batch_settings(moto.url, opensearch_standin.url)
    proc = run_cli(["cloud-batch", f"s3://{PHOTOS_BUCKET}/collection/", "--no-wait", "--max-concurrent-transforms", "20"],
                   env)
    assert proc.returncode == 1
    assert "LOOKALIKE_TRANSFORM_MAX_CONCURRENT=20 is not valid" in proc.stderr and "100 MB" in proc.stderr
    env["LOOKALIKE_TRANSFORM_INPUT_PREFIXES"] = f"s3://{IMAGES_BUCKET}/images/"
    proc = run_cli(["cloud-batch", f"s3://{PHOTOS_BUCKET}/collection/", "--no-wait", "--job-name", "refused"], env)
    assert proc.returncode == 1 and "batch.input_prefixes" in proc.stderr
    jobs = sagemaker_client(moto).list_transform_jobs()["TransformJobSummaries"]
    assert "refused" not in {j["TransformJobName"] for j in jobs}


def test_progress_counts_outputs_and_reads_the_status(moto):
    sm, s3 = sagemaker_client(moto), moto.s3()
    paths = job_paths(TRANSFORM_PREFIX, "job-progress")
    sm.create_transform_job(TransformJobName="job-progress", ModelName=TRANSFORM_MODEL,
                            TransformInput={"DataSource": {"S3DataSource": {"S3DataType": "ManifestFile",
                                                                            "S3Uri": paths["manifest"]}}},
                            TransformOutput={"S3OutputPath": paths["output"]},
                            TransformResources={"InstanceType": "ml.c5.xlarge", "InstanceCount": 1})
    bucket, key = paths["output"].removeprefix("s3://").split("/", 1)
    for name in ("birds/a.png.out", "fruit/b.png.out", "fruit/c.png.out"):
        s3.put_object(Bucket=bucket, Key=key + name, Body=b"{}\n")
    s3.put_object(Bucket=bucket, Key=key + "_SUCCESS", Body=b"")  # not an output
    progress = job_progress(sm, s3, "job-progress", paths["output"], 10)
    assert (progress.status, progress.done, progress.total, progress.finished) == ("Completed", 3, 10, True)


def test_wait_polls_until_the_job_ends():
    class FakeSageMaker:
        statuses = iter(["InProgress", "InProgress", "Failed"])

        def describe_transform_job(self, TransformJobName):
            status = next(self.statuses)
            return {"TransformJobStatus": status, **({"FailureReason": "ClientError: 1 object"} if status == "Failed"
                                                     else {})}

    class FakeS3:
        def get_paginator(self, name):
            return self

        def paginate(self, **_):
            return [{"Contents": [{"Key": "batch/output/j/a.png.out"}]}]

    seen, sleeps = [], []
    final = wait_for_job(FakeSageMaker(), FakeS3(), "j", "s3://bkt/batch/output/j/", 2, poll=7, report=seen.append,
                         sleep=sleeps.append)
    assert [p.status for p in seen] == ["InProgress", "InProgress", "Failed"] and sleeps == [7, 7]
    assert final == Progress("Failed", 1, 2, "ClientError: 1 object")


def test_aws_errors_and_unknown_jobs_are_one_line(moto, opensearch_standin):
    env = batch_settings(moto.url, opensearch_standin.url)
    proc = run_cli(["cloud-batch", "s3://no-such-bucket-here/photos/", "--no-wait"], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("lookalike: error: AWS refused ListObjectsV2: NoSuchBucket: The specified bucket "
                                   "does not exist")
    proc = run_cli(["cloud-batch-load", "no-such-job"], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"lookalike: error: no records of that job at {TRANSFORM_PREFIX}manifests/"
                                  "no-such-job.records.jsonl")
