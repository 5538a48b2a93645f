"""Batch ingest end to end on 127.0.0.1: the demo collection in moto's S3 → ``lookalike cloud-batch``
(manifest + CreateTransformJob in moto) → every record of the job through the REAL SageMaker
serving stack (TorchServe + the toolkit serving the model archive, as Batch Transform would send it:
tests/support/batch_transform.py) → ``.out`` files in moto's S3 → ``lookalike cloud-batch-load`` →
the OpenSearch stand-in holds what a local ``lookalike index`` of the same images holds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.index.faiss_index import FaissIndex
from lookalike.index.ingest import image_id
from lookalike.index.opensearch import OpenSearchIndex
from tests.conftest import ARTIFACTS, demo_images
from tests.support.batch_transform import (PHOTOS_BUCKET, batch_settings, prepare_account, run_cli,
                                           run_transform_job, sagemaker_client)
from tests.support.cloud import MotoServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # moto, the stand-in and TorchServe on 127.0.0.1

BROKEN = "collection/birds/broken.png"


@pytest.fixture(scope="module")
def moto():
    server = MotoServer()
    try:
        prepare_account(server)
        s3 = server.s3()
        for i, path in enumerate(demo_images()):
            extra = {"ChecksumAlgorithm": "SHA256"} if i % 2 else {}  # ids from S3's checksum or hashed here
            s3.put_object(Bucket=PHOTOS_BUCKET, Key=f"collection/{path.parent.name}/{path.name}",
                          Body=path.read_bytes(), **extra)
        data = demo_images()[0].read_bytes()
        s3.put_object(Bucket=PHOTOS_BUCKET, Key=BROKEN, Body=data[: len(data) // 2])  # a truncated PNG
        yield server
    finally:
        server.stop()


def test_batch_ingest_through_the_real_container_equals_a_local_index(moto, sagemaker, demo_index_dir,
                                                                     opensearch_standin):
    env = batch_settings(moto.url, opensearch_standin.url)
    started = run_cli(["cloud-batch", f"s3://{PHOTOS_BUCKET}/collection/", "--no-wait", "--json",
                       "--job-name", "job-real"], env)
    assert started.returncode == 0, started.stderr
    plan = json.loads(started.stdout)["plan"]
    assert (plan["found"], plan["new"], plan["present"]) == (188, 188, 0)

    # SageMaker's part: each object of the manifest POSTed to the container, KEY.out written back.
    driver = run_transform_job(sagemaker_client(moto), moto.s3(), sagemaker.container, "job-real")
    assert len(driver.written) == 187
    assert list(driver.refused) == [BROKEN] and driver.refused[BROKEN][0] == 400  # invalid_image, no .out
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "batch-transform-driver.json").write_text(json.dumps({
        "images": 188, "seconds": round(driver.seconds, 2), "images_per_second": round(188 / driver.seconds, 2),
        "concurrency": 4, "torchserve_workers": 1, "note": "single-image requests, this 2-core machine"}, indent=2))

    loaded = run_cli(["cloud-batch-load", "job-real", "--json", "--bulk-size", "50"], env)
    assert loaded.returncode == 1, loaded.stderr  # one image failed: reported, the rest loaded
    summary = json.loads(loaded.stdout)["load"]
    assert (summary["total"], summary["loaded"], summary["present"]) == (188, 187, 0)
    assert [f["key"] for f in summary["failed"]] == [BROKEN]
    assert "no output" in summary["failed"][0]["reason"]

    local = FaissIndex.load(demo_index_dir)
    remote = OpenSearchIndex.connect(opensearch_standin.url, "batch")
    remote.save()
    local_items, remote_items = dict(local.items()), dict(remote.items())
    assert sorted(remote_items) == sorted(local_items)  # same content ids
    ids = sorted(local_items)
    assert {i: remote_items[i]["label"] for i in ids} == {i: local_items[i]["label"] for i in ids}
    assert {i: remote_items[i]["sha256"] for i in ids} == {i: local_items[i]["sha256"] for i in ids}
    np.testing.assert_allclose(remote.get_vectors(ids), local.get_vectors(ids), atol=1e-5)
    assert remote.model["name"] == local.model["name"] and remote.dim == local.dim == 1280

    # A second run over the prefix: everything indexed is skipped; only the broken image is left.
    again = run_cli(["cloud-batch", f"s3://{PHOTOS_BUCKET}/collection/", "--no-wait", "--json",
                     "--job-name", "job-again"], env)
    assert again.returncode == 0, again.stderr
    plan = json.loads(again.stdout)["plan"]
    assert (plan["found"], plan["new"], plan["present"]) == (188, 1, 187)
    broken_id = image_id(moto.s3().get_object(Bucket=PHOTOS_BUCKET, Key=BROKEN)["Body"].read())[0]
    assert broken_id not in remote_items
